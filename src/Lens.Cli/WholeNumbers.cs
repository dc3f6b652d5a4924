using System.ComponentModel;
using System.Globalization;

namespace Lens.Cli;

/// <summary>
/// Reads every <c>int</c> option of every command as a plain decimal number. The framework's own converter also reads hexadecimal
/// (<c>#20</c> or <c>0x20</c> as 32) and fails with a message that names neither the option nor the form; this one refuses both.
/// <see cref="LensApp"/> installs it once for the process and names the option in the error.
/// </summary>
internal sealed class DecimalInt32Converter : TypeConverter
{
    private static int _installed;

    /// <summary>Makes this the converter of <c>int</c> (and so of <c>int?</c>) for the options of this process.</summary>
    public static void Install()
    {
        if (Interlocked.Exchange(ref _installed, 1) == 0)
        {
            TypeDescriptor.AddAttributes(typeof(int), new TypeConverterAttribute(typeof(DecimalInt32Converter)));
        }
    }

    public override bool CanConvertFrom(ITypeDescriptorContext? context, Type sourceType) =>
        sourceType == typeof(string) || base.CanConvertFrom(context, sourceType);

    public override object? ConvertFrom(ITypeDescriptorContext? context, CultureInfo? culture, object value)
    {
        if (value is not string text)
        {
            return base.ConvertFrom(context, culture, value);
        }

        var trimmed = text.Trim();
        var digits = trimmed.StartsWith('-') ? trimmed[1..] : trimmed;
        if (digits.Length > 0 && !digits.AsSpan().ContainsAnyExceptInRange('0', '9'))
        {
            return int.TryParse(trimmed, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n)
                ? n
                : throw new WholeNumberException(text, $"'{text}' is out of range (allowed {int.MinValue}..{int.MaxValue})");
        }

        throw new WholeNumberException(text, $"'{text}' is not a whole number; give decimal digits, e.g. 300");
    }
}

/// <summary>An option's value that is not a plain decimal <c>int</c>; <see cref="Text"/> is what was given.</summary>
internal sealed class WholeNumberException(string text, string message) : FormatException(message)
{
    public string Text { get; } = text;

    /// <summary>The option whose value was <paramref name="text"/> on the command line (<c>--x v</c>, <c>--x=v</c>), or null.</summary>
    public static string? OptionOf(IReadOnlyList<string> args, string text)
    {
        for (var i = 0; i < args.Count; i++)
        {
            if (!args[i].StartsWith('-'))
            {
                continue;
            }

            var separator = args[i].IndexOfAny(['=', ':']);
            if (separator > 0 && args[i][(separator + 1)..] == text)
            {
                return args[i][..separator];
            }

            if (separator < 0 && i + 1 < args.Count && args[i + 1] == text)
            {
                return args[i];
            }
        }

        return null;
    }
}
