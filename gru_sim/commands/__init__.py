"""What each ``gru-sim`` subcommand does once its arguments are parsed: one module per subcommand.

``gru_sim.cli`` parses the command line and hands the parsed arguments to a ``cmd_*`` function here,
which calls the stages of the pipeline and prints what they return. Each module imports its heavy
stage (torch for measuring, the simulators, plotly for reports) inside the command that needs it, so
that importing this package stays as light as importing the CLI.
"""
