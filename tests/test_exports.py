import crossroads


def test_all_exports_resolve_and_are_sorted():
    for name in crossroads.__all__:
        assert getattr(crossroads, name) is not None, name
    public = set(crossroads.__all__) - {"__version__"}
    assert len(public) == len(crossroads.__all__) - 1  # no duplicates
    assert public == set(crossroads._WHERE)  # the lazy table and __all__ agree


def test_lazy_import_keeps_langgraph_out(tmp_path):
    import subprocess
    import sys

    code = "import sys, crossroads.cli; print('langgraph' in sys.modules, 'sqlalchemy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"
