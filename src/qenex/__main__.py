from qenex.cli.main import run

run()
