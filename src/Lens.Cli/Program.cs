using Lens.Cli;

return await LensApp.RunAsync(args);
