"""Applications built on the kernel: analyses, screening, campaigns, the in-silico closed loop,
the optimizer benchmark, the demo and plots. They may use the plugin folders; the kernel may not."""
