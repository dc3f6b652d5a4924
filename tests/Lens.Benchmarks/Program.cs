using BenchmarkDotNet.Running;

BenchmarkSwitcher.FromAssembly(typeof(Lens.Benchmarks.PredictionBenchmarks).Assembly).Run(args);
