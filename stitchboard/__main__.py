from stitchboard.cli import app

app(prog_name="stitchboard")
