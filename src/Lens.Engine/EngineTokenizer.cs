using System.Globalization;

namespace Lens.Engine;

/// <summary>
/// The reference engine's deterministic text tokenizer: one token per whitespace-separated word, so a prompt of <c>n</c> words is
/// exactly <c>n</c> tokens (" hi hi hi" is 3). A word of the form <c>t&lt;id&gt;</c> with <c>id</c> inside the vocabulary is that
/// token id (so generated text reads back as the same tokens); any other word is its FNV-1a hash (over UTF-16 code units) modulo
/// the vocabulary. No special tokens are added. Token <c>id</c> reads as <c>" t&lt;id&gt;"</c>.
/// </summary>
public static class EngineTokenizer
{
    /// <summary>Tokenizes <paramref name="text"/> into ids within <c>0 .. vocab-1</c>.</summary>
    public static int[] Tokenize(string text, int vocab)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentOutOfRangeException.ThrowIfLessThan(vocab, 1);
        var ids = new List<int>();
        var span = text.AsSpan();
        var i = 0;
        while (i < span.Length)
        {
            while (i < span.Length && char.IsWhiteSpace(span[i]))
            {
                i++;
            }

            var start = i;
            while (i < span.Length && !char.IsWhiteSpace(span[i]))
            {
                i++;
            }

            if (i > start)
            {
                ids.Add(WordId(span[start..i], vocab));
            }
        }

        return [.. ids];
    }

    /// <summary>The id of one word.</summary>
    public static int WordId(ReadOnlySpan<char> word, int vocab)
    {
        // t<id> without leading zeros, so that each id has exactly one spelling.
        if (word.Length > 1 && word[0] == 't' && char.IsAsciiDigit(word[1]) && (word.Length == 2 || word[1] != '0') &&
            int.TryParse(word[1..], NumberStyles.None, CultureInfo.InvariantCulture, out var id) && id < vocab)
        {
            return id;
        }

        var hash = 2166136261u;
        foreach (var c in word)
        {
            hash = (hash ^ c) * 16777619u;
        }

        return (int)(hash % (uint)vocab);
    }

    /// <summary>The text of one token: a space and <c>t&lt;id&gt;</c>.</summary>
    public static string TokenText(int id) => " t" + id.ToString(CultureInfo.InvariantCulture);
}
