"""The package mirrors the DAG: one module per task at the top of tasks/, named as the task, and
subpackages for what stages share; shared code never reaches back into a stage."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TASKS = ROOT / "tasks"
STAGES = ["check_inputs", "ingest", "encode_labels", "build_shards", "train", "evaluate", "publish", "approve"]
ASKED = ["approve"]  # a person's answer in Required Actions: an operator, not a @task function


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, at any depth of its code (lazy imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_top_of_tasks_is_the_stages_and_a_few_subpackages():
    modules = sorted(p.stem for p in TASKS.glob("*.py"))
    assert modules == sorted(STAGES)
    packages = sorted(p.name for p in TASKS.iterdir()
                      if p.is_dir() and p.name != "__pycache__" and not p.name.startswith("."))
    assert packages == ["data", "modelling", "pipeline", "registry", "reporting", "serving", "store"]
    for package in packages:
        for folder in [TASKS / package, *(p for p in (TASKS / package).rglob("*") if p.is_dir())]:
            if folder.name != "__pycache__":
                assert (folder / "__init__.py").is_file(), f"{folder} is not a package"


def test_the_stage_modules_are_the_dag_tasks():
    module = ast.parse((ROOT / "dags" / "captcha_training.py").read_text())
    dag = next(node for node in module.body if isinstance(node, ast.FunctionDef) and node.name == "captcha_training")
    task_functions = [node.name for node in ast.walk(dag) if isinstance(node, ast.FunctionDef)
                      and any(getattr(d, "id", getattr(getattr(d, "func", None), "id", None)) == "task"
                              for d in node.decorator_list)]
    assert task_functions == [stage for stage in STAGES if stage not in ASKED]
    for stage in STAGES:
        assert f"tasks.{stage}" in imported_modules(ROOT / "dags" / "captcha_training.py")


def test_no_module_imports_a_stage_module_but_the_dag():
    stage_modules = {f"tasks.{stage}" for stage in STAGES}
    offenders = []
    for path in sorted(TASKS.rglob("*.py")):
        reached = {name for name in imported_modules(path)
                   if name in stage_modules or any(name.startswith(f"{s}.") for s in stage_modules)}
        own = f"tasks.{path.stem}" if path.parent == TASKS else None
        reached = {name for name in reached if own is None or not (name == own or name.startswith(f"{own}."))}
        if reached:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(reached)}")
    assert not offenders, "\n".join(offenders)


def test_only_the_required_actions_operator_imports_airflow():
    importers = sorted(str(path.relative_to(ROOT)) for path in TASKS.rglob("*.py")
                       if any(name == "airflow" or name.startswith("airflow.") for name in imported_modules(path)))
    assert importers == ["tasks/pipeline/approval.py"]
