"""The floors and the attacker's boundary, checked by import-linter's contracts in `.importlinter`."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", str(config)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_every_import_contract_is_kept():
    result = _lint(ROOT / ".importlinter")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_linter_really_reads_the_imports(tmp_path):
    # A contract the code breaks on purpose (the attacks do import dlg_core.client) must be reported broken,
    # so a green run above means the contracts were checked, not skipped.
    config = tmp_path / "broken.ini"
    config.write_text("[importlinter]\nroot_packages =\n    dlg_core\n\n[importlinter:contract:x]\nname = x\n"
                      "type = forbidden\nsource_modules =\n    dlg_core.attacks\nforbidden_modules =\n"
                      "    dlg_core.client\n")
    result = _lint(config)
    assert result.returncode != 0 and "BROKEN" in result.stdout


def test_nothing_below_the_pages_imports_a_page():
    # app_pages/ are scripts run by st.navigation, not a package, so import-linter cannot see them.
    for path in [*ROOT.glob("dlg_core/**/*.py"), *ROOT.glob("ui/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.split(".")[0] == "app_pages" for n in names), path
