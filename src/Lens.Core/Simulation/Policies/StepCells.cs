namespace Lens.Core;

/// <summary>
/// The cost cells of a deployment under its scheduling policy, as one index space (method.md, "Scheduling policies: every stack's
/// scheduler, one fit for all"): first the prefill cells <c>A[p]</c>, one per prefill bucket (present under every policy so that cell
/// indices are the model file's layout, but never reached under the chunked scheduler, whose prompts run inside mixed steps:
/// <see cref="UsesPrefill"/>), then the step table row by row, <see cref="Columns"/> cells a row:
/// <code>
/// cell(prefill p)  = p                                   0 &lt;= p &lt; PrefillCells
/// cell(row, col)   = PrefillCells + row * Columns + col  row: batch bucket (prefill-first) or token bucket (chunked)
///                                                         col: decode bucket (padded), block bucket (paged) or context bucket (chunked)
/// </code>
/// The step table's layout is the model file's (<see cref="DeploymentModel.StepMs(int, int)"/>), so a cell's cost is one array read.
/// </summary>
public sealed class StepCells
{
    private readonly int[] _prefill, _rows, _columns;

    public StepCells(BucketSet buckets, SchedulingPolicy policy)
    {
        ArgumentNullException.ThrowIfNull(buckets);
        ArgumentNullException.ThrowIfNull(policy);
        Policy = policy;
        _prefill = [.. buckets.Prefill];
        _rows = policy.Scheduler == SchedulerKind.Chunked ? [.. policy.TokenBuckets] : [.. buckets.Batch];
        _columns = [.. buckets.Decode];
    }

    public SchedulingPolicy Policy { get; }

    /// <summary>Whether steps ever run a prefill cell (false under the chunked scheduler: those cells exist but no step reaches them).</summary>
    public bool UsesPrefill => Policy.Scheduler != SchedulerKind.Chunked;

    /// <summary>Prefill cells, the first of the index space (one per prefill bucket).</summary>
    public int PrefillCells => _prefill.Length;

    /// <summary>Rows of the step table: batch buckets (prefill-first) or token buckets (chunked).</summary>
    public int Rows => _rows.Length;

    /// <summary>Columns of the step table: decode buckets in tokens (padded), block buckets in blocks (paged) or context buckets (chunked).</summary>
    public int Columns => _columns.Length;

    /// <summary>All cells.</summary>
    public int Count => _prefill.Length + (_rows.Length * _columns.Length);

    /// <summary>The cell of prefill bucket index <paramref name="prefillIndex"/>.</summary>
    public int Prefill(int prefillIndex) => prefillIndex;

    /// <summary>The cell of step-table row <paramref name="row"/> and column <paramref name="column"/>.</summary>
    public int Step(int row, int column) => _prefill.Length + (row * _columns.Length) + column;

    /// <summary>Whether <paramref name="cell"/> is a prefill cell.</summary>
    public bool IsPrefill(int cell) => cell < _prefill.Length;

    /// <summary>The step-table row and column of a step cell.</summary>
    public (int Row, int Column) RowColumn(int cell)
    {
        var k = cell - _prefill.Length;
        return (k / _columns.Length, k % _columns.Length);
    }

    /// <summary>
    /// A readable, stable name for reports: prefill-first padded keeps the bucket ids of earlier releases (<c>prefill-128</c>,
    /// <c>decode-1024-b8</c>); paged decode cells read <c>decode-b8-blocks64</c>; chunked cells <c>step-t32-k512</c>.
    /// </summary>
    public string Name(int cell)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(cell);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(cell, Count);
        if (IsPrefill(cell))
        {
            return new BucketId(BucketKind.Prefill, _prefill[cell]).ToString();
        }

        var (row, column) = RowColumn(cell);
        return Policy.Scheduler == SchedulerKind.Chunked ? $"step-t{_rows[row]}-k{_columns[column]}"
            : Policy.Execution == ExecutionKind.Paged ? $"decode-b{_rows[row]}-blocks{_columns[column]}"
            : new BucketId(BucketKind.Decode, _columns[column], _rows[row]).ToString();
    }

    /// <summary>The bucket id of a cell (prefill-first padded names; other policies' step cells map row to batch, column to edge).</summary>
    public BucketId Bucket(int cell)
    {
        if (IsPrefill(cell))
        {
            return new BucketId(BucketKind.Prefill, _prefill[cell]);
        }

        var (row, column) = RowColumn(cell);
        return new BucketId(BucketKind.Decode, _columns[column], _rows[row]);
    }
}
