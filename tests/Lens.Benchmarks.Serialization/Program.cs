using BenchmarkDotNet.Running;

BenchmarkSwitcher.FromAssembly(typeof(Lens.Benchmarks.SerializationBenchmarks).Assembly).Run(args);
