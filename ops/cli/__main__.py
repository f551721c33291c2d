"""`python -m ops.cli COMMAND`: how the bench, the demo and the tests start a command."""

from ops.cli.app import main

main()
