namespace Lens.Core;

/// <summary>
/// How one replica of a deployment is laid out and what it costs (method.md, "Parallel layouts and cost"): the chips it occupies
/// (tensor-parallel degree times devices), the device kind, and a price per chip-hour. A model file without them is one chip of an
/// unnamed kind with no price, so cost columns say "no price" rather than guess.
/// </summary>
/// <param name="Chips">Chips per replica (1..4096).</param>
/// <param name="DeviceKind">The device kind (such as <c>inf2</c>, <c>gaudi2</c>), or null when unknown.</param>
/// <param name="PricePerChipHour">Price of one chip for one hour (any currency, the same for every candidate), or null.</param>
public sealed record DeploymentLayout(int Chips = 1, string? DeviceKind = null, double? PricePerChipHour = null)
{
    public const int MaxChips = 4096;
    public const int MaxDeviceKindLength = 64;
    public const double MaxPrice = 1_000_000;

    /// <summary>One chip, no kind, no price: what a model file without a layout means.</summary>
    public static DeploymentLayout Default { get; } = new();

    /// <summary>Whether the layout is the default (nothing to write to a model file).</summary>
    public bool IsDefault => this == Default;

    /// <summary>The first problem with the layout, naming the field and its allowed range, or null when it is valid.</summary>
    public string? Check()
    {
        if (Chips is < 1 or > MaxChips)
        {
            return $"chips {Chips} is outside 1..{MaxChips}";
        }

        if (DeviceKind is { } kind && (kind.Length is 0 or > MaxDeviceKindLength || kind.Any(char.IsControl)))
        {
            return $"deviceKind must be 1..{MaxDeviceKindLength} printable characters";
        }

        return PricePerChipHour is { } p && !(p >= 0 && p <= MaxPrice)
            ? $"pricePerChipHour {p} is outside 0..{MaxPrice}"
            : null;
    }
}
