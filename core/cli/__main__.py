"""``python -m actmax.core.cli`` runs the command line."""
from actmax.core.cli import main

main()
