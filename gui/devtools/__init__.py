"""Developer tools that drive the GUI: the GUI and coding-window benchmarks
(``mmme bench gui``, ``mmme bench annotate``), the scripted session they and the
screenshots run (``mmme screenshots``), and the screenshots themselves. The
product's windows never import them."""
