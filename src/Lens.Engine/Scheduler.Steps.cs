using System.Diagnostics;
using Lens.Core;

namespace Lens.Engine;

/// <summary>The scheduler's steps: each takes its sequences' inputs to the executor and hands the tokens back, in admission order.</summary>
internal sealed partial class Scheduler
{
    /// <summary>Takes a slot, runs the prefill alone and emits the first token; a sequence with more to come goes in flight.</summary>
    private void Admit(Sequence sequence, int prefillBucket)
    {
        sequence.Slot = _freeSlots[--_freeSlotCount];
        (_executor as IDeviceClock)?.Ready(sequence.Arrived);
        sequence.Admitted = Stopwatch.GetTimestamp();
        var prefill = _executor.Prefill(sequence.Slot, sequence.Prompt, sequence.InputLength, prefillBucket);
        var end = Stopwatch.GetTimestamp();
        sequence.PrefillTrace = new PrefillTrace(new BucketId(BucketKind.Prefill, prefill.PaddedLength), prefill.PaddedLength,
            prefill.SlowdownMs, Stopwatch.GetElapsedTime(sequence.Admitted, end).TotalMilliseconds);
        sequence.FirstToken = end;
        sequence.Prefilled = sequence.InputLength;
        sequence.Tokens[0] = prefill.Token;
        sequence.Publish(1);
        if (sequence.Done)
        {
            Retire(sequence);
        }
        else
        {
            _inFlight[_inFlightCount++] = sequence;
        }
    }

    /// <summary>
    /// One decode step for the first <see cref="ScheduledStep.Rows"/> sequences in flight at the step's cell; then every row gets
    /// its token and finished sequences leave, in admission order.
    /// </summary>
    private void Decode(in ScheduledStep step)
    {
        var rows = step.Rows;
        var batch = step.Batch;
        if (step.Kind != StepKind.Decode || rows < 1 || rows > _inFlightCount || batch < rows)
        {
            throw new UnreachableException($"the policy scheduled {step} with {_inFlightCount} sequences in flight");
        }

        var started = Stopwatch.GetTimestamp();
        for (var r = 0; r < rows; r++)
        {
            var sequence = _inFlight[r];
            var k = sequence.Produced;
            _rows[r] = new DecodeRow
            {
                Slot = sequence.Slot,
                InputLength = sequence.InputLength,
                Position = sequence.InputLength + k - 1,
                Token = sequence.Tokens[k - 1],
            };
        }

        var trace = _executor.Decode(_rows.AsSpan(0, rows), batch, step.LengthBucket, started);
        _log.Record(trace);
        var ms = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        for (var r = 0; r < rows; r++)
        {
            Decoded(_inFlight[r], _rows[r], trace, ms, batch, rows);
        }

        RetireFinished();
    }

    /// <summary>Chunked prefill: the head of the queue takes a slot and goes in flight with nothing computed yet.</summary>
    private void Join(Sequence sequence)
    {
        sequence.Slot = _freeSlots[--_freeSlotCount];
        (_executor as IDeviceClock)?.Ready(sequence.Arrived);
        sequence.Admitted = Stopwatch.GetTimestamp();
        sequence.Prefilled = 0;
        sequence.Scheduled = 0;
        _inFlight[_inFlightCount++] = sequence;
    }

    /// <summary>
    /// One mixed step (chunked prefill): a row per scheduled token, in admission order (a decoding sequence's last token, or the
    /// next <see cref="Sequence.Scheduled"/> prompt tokens), run at the step's token and context buckets. A sequence whose prompt
    /// completes gets its first token from its chunk's last row; a decoding one its next token; finished sequences leave.
    /// </summary>
    private void Mixed(in ScheduledStep step)
    {
        var tokens = step.Rows;
        if (tokens < 1 || tokens > step.Batch)
        {
            throw new UnreachableException($"the policy scheduled {step} with {_inFlightCount} sequences in flight");
        }

        var rows = _mixedRows.Length >= tokens ? _mixedRows : _mixedRows = new DecodeRow[Math.Max(tokens, 2 * _mixedRows.Length)];
        var started = Stopwatch.GetTimestamp();
        var n = 0;
        for (var s = 0; s < _inFlightCount; s++)
        {
            var sequence = _inFlight[s];
            for (var t = 0; t < sequence.Scheduled; t++)
            {
                var decoding = sequence.Prefilled == sequence.InputLength;
                var position = decoding ? sequence.InputLength + sequence.Produced - 1 : sequence.Prefilled + t;
                rows[n++] = new DecodeRow
                {
                    Slot = sequence.Slot,
                    InputLength = sequence.InputLength,
                    Position = position,
                    Token = decoding ? sequence.Tokens[sequence.Produced - 1]
                        : sequence.Prompt is { } prompt ? prompt[position] : DecodeRow.SyntheticPrompt,
                };
            }
        }

        if (n != tokens)
        {
            throw new UnreachableException($"the policy scheduled {tokens} tokens but gave sequences {n}");
        }

        var trace = _executor.Mixed(rows.AsSpan(0, n), step.Batch, step.LengthBucket, started);
        _log.Record(trace);
        var end = Stopwatch.GetTimestamp();
        var ms = Stopwatch.GetElapsedTime(started, end).TotalMilliseconds;
        n = 0;
        for (var s = 0; s < _inFlightCount; s++)
        {
            var sequence = _inFlight[s];
            var scheduled = sequence.Scheduled;
            sequence.Scheduled = 0;
            if (scheduled == 0)
            {
                continue;
            }

            n += scheduled;
            if (sequence.Prefilled == sequence.InputLength)
            {
                Decoded(sequence, rows[n - 1], trace, ms, step.Batch, tokens);
            }
            else if ((sequence.Prefilled += scheduled) == sequence.InputLength)
            {
                sequence.FirstToken = end;
                sequence.PrefillTrace = new PrefillTrace(new BucketId(BucketKind.Prefill, sequence.InputLength), sequence.InputLength,
                    0, Stopwatch.GetElapsedTime(sequence.Admitted, end).TotalMilliseconds);
                sequence.Tokens[0] = rows[n - 1].Token;
                sequence.Publish(1);
            }
        }

        RetireFinished();
    }

    /// <summary>A decoding sequence's next token from its row of a step, with the step's trace.</summary>
    private static void Decoded(Sequence sequence, in DecodeRow row, in BatchStepTrace trace, double ms, int batch, int rows)
    {
        var k = sequence.Produced;
        sequence.CacheMoves += row.CacheMoved ? 1 : 0;
        sequence.Tokens[k] = row.Token;
        sequence.Steps[k - 1] = new DecodeStepTrace(k, sequence.InputLength + k, trace.Bucket, trace.AttentionSpan, row.CacheMoved,
            trace.SlowdownMs, ms, batch, rows, trace.Index);
        sequence.Publish(k + 1);
    }

    /// <summary>After a step: the sequences with all their tokens leave, in admission order; the others keep their order.</summary>
    private void RetireFinished()
    {
        var kept = 0;
        for (var r = 0; r < _inFlightCount; r++)
        {
            var sequence = _inFlight[r];
            if (sequence.Done)
            {
                Retire(sequence);
            }
            else
            {
                _inFlight[kept++] = sequence;
            }
        }

        Array.Clear(_inFlight, kept, _inFlightCount - kept);
        _inFlightCount = kept;
    }

    /// <summary>A finished sequence frees its slot and completes.</summary>
    private void Retire(Sequence sequence)
    {
        _freeSlots[_freeSlotCount++] = sequence.Slot;
        sequence.Slot = -1;
        _work.Request();
        sequence.Complete(Stopwatch.GetTimestamp());
    }
}
