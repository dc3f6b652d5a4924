using System.Net;
using System.Net.Sockets;

namespace Lens.Measurement;

/// <summary>
/// Which addresses a server may call on a tenant's behalf. Loopback, link-local (cloud metadata services live at 169.254.169.254)
/// and unspecified addresses reach the server itself or its host, never a device: a server refuses them unless its operator
/// allows them (tests, a device on the same machine).
/// </summary>
public static class EndpointPolicy
{
    /// <summary>True for 127.0.0.0/8, ::1, 169.254.0.0/16, fe80::/10, 0.0.0.0 and ::, also written as IPv4-mapped IPv6.</summary>
    public static bool IsLocal(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        if (IPAddress.IsLoopback(address) || address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any) ||
            address.Equals(IPAddress.IPv6None))
        {
            return true;
        }

        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            Span<byte> bytes = stackalloc byte[4];
            address.TryWriteBytes(bytes, out _);
            return bytes[0] == 169 && bytes[1] == 254;
        }

        return address.IsIPv6LinkLocal;
    }

    /// <summary>
    /// Why <paramref name="endpoint"/> may not be called, or null: not absolute http(s), or (unless <paramref name="allowLocal"/>)
    /// a literal local address or <c>localhost</c>. Host names are checked again when they resolve (<see cref="ConnectAsync"/>).
    /// </summary>
    public static string? Check(Uri endpoint, bool allowLocal)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        if (!endpoint.IsAbsoluteUri || (endpoint.Scheme != Uri.UriSchemeHttp && endpoint.Scheme != Uri.UriSchemeHttps))
        {
            return "must be an absolute http(s) URL such as https://npu-a.internal:8000/v1/";
        }

        if (allowLocal)
        {
            return null;
        }

        var host = endpoint.IdnHost;
        var local = host.Equals("localhost", StringComparison.OrdinalIgnoreCase) ||
                    host.EndsWith(".localhost", StringComparison.OrdinalIgnoreCase) ||
                    (IPAddress.TryParse(host, out var ip) && IsLocal(ip));
        return local ? $"{host} is a loopback, link-local or unspecified address, which is refused unless the operator allows local backend addresses" : null;
    }

    /// <summary>
    /// A <see cref="SocketsHttpHandler.ConnectCallback"/> that resolves the host and refuses to connect when any of its addresses is
    /// local (so a name that resolves to 127.0.0.1 or 169.254.169.254 is refused like the literal address).
    /// </summary>
    public static async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var host = context.DnsEndPoint.Host;
        var addresses = IPAddress.TryParse(host, out var literal) ? [literal] : await Dns.GetHostAddressesAsync(host, cancellationToken);
        if (addresses.Length == 0 || addresses.Any(IsLocal))
        {
            throw new EndpointRefusedException(
                $"{host} resolves to a loopback, link-local or unspecified address, which this server does not call unless its operator allows it");
        }

        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(addresses, context.DnsEndPoint.Port, cancellationToken);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}

/// <summary>The server refused to connect to an address by <see cref="EndpointPolicy"/>; not transient.</summary>
public sealed class EndpointRefusedException(string message) : IOException(message);
