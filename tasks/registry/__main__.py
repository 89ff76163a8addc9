"""The registry's commands.

    python -m tasks.registry [--store URI] list        (--store may follow the command too)
    python -m tasks.registry [--store URI] show VERSION
    python -m tasks.registry [--store URI] promote VERSION --why TEXT [--who NAME]
    python -m tasks.registry [--store URI] rollback --why TEXT [--who NAME]
    python -m tasks.registry [--store URI] gc --keep N [--unfinished] [--dry-run]
    python -m tasks.registry [--store URI] bases

The store is `--store`, else CAPTCHA_STORE, else the project's store/ folder; S3 credentials and
endpoint come from the standard AWS environment variables. `promote` and `rollback` move
models/latest.json by compare-and-swap, as the gate does, and go to the audit log.
"""
from __future__ import annotations

import argparse
import getpass
import json
import sys
import time

from tasks.registry.bases import LATEST_BASE, list_bases
from tasks.registry.cleanup import apply_cleanup, plan_cleanup
from tasks.registry.promotion import move_latest, rollback_target
from tasks.registry.versions import list_versions, read_champion, read_history, read_version, version_prefix
from tasks.store import PreconditionFailed, StoreError, open_store


class RegistryError(RuntimeError):
    """A command that cannot be carried out as asked."""


def version_table(records: list[dict], champion: str | None, history: list[dict]) -> str:
    """One line per version, newest first, with the last decision about each."""
    last = {d["candidate"]: d for d in history}
    lines = ["  version | created (UTC) | data version (images) | arch | full-captcha (95% CI) | characters | "
             "training | decision"]
    for r in reversed(records):
        m = r["metrics"]
        low, high = m["full_accuracy_ci95"]
        decision = last.get(r["version"])
        state = ("awaiting approval" if decision and decision.get("awaiting")
                 else "promoted" if decision and decision["moved"] else "not promoted")
        verdict = f"{state} ({decision['action']}): {decision['why']}" if decision else "no decision recorded"
        lines.append(f"{'*' if r['version'] == champion else ' '} {r['version']} | "
                     f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(r['created_at']))} | "
                     f"{r['data_version']} ({r['images']}) | {r['arch']} | "
                     f"{100 * m['full_accuracy']:.1f}% ({100 * low:.1f}-{100 * high:.1f}) | "
                     f"{100 * m['char_accuracy']:.1f}% | {r['training_seconds'] / 60:.1f} min | {verdict}")
    return "\n".join(lines + ["(* the champion, models/latest.json)"])


def _complete(store, version: str) -> dict:
    record = read_version(store, version)
    if record is None:
        raise RegistryError(f"there is no complete version {version!r} in {store.uri} (see `list`)")
    return record


def promote(store, version: str, why: str, who: str, action: str = "promote") -> dict:
    """Make `version` the champion by hand, through the same compare-and-swap as the gate."""
    record = _complete(store, version)
    champion, tag = read_champion(store)
    before = champion["version"] if champion else None
    if before == version:
        raise RegistryError(f"{version} already is the champion")
    try:
        return move_latest(store, record, tag, before, action, why, who)
    except PreconditionFailed:
        raise RegistryError("models/latest.json moved while this command ran; look again (`list`) and retry") \
            from None


def rollback(store, why: str, who: str) -> dict:
    """Make the champion before the current one the champion again."""
    champion = read_champion(store)[0]
    if champion is None:
        raise RegistryError("nothing is published: there is no champion to roll back")
    target = rollback_target(store)
    if target is None:
        raise RegistryError(f"{champion['version']} was the first champion: there is none to roll back to")
    return promote(store, target, why, who, action="rollback")


def base_table(records: list[dict], latest: str | None) -> str:
    """One line per base model, newest first."""
    lines = ["  base | created (UTC) | synthetic test captchas read | epochs, training | alphabet"]
    for r in reversed(records):
        lines.append(f"{'*' if r['version'] == latest else ' '} {r['version']} | "
                     f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(r['created_at']))} | "
                     f"{100 * r['full_accuracy']:.1f}% of {r['test_images']} | {r['epochs']}, "
                     f"{r['train_s'] / 60:.1f} min | {len(r['alphabet'])} characters")
    return "\n".join(lines + ["(* bases/latest.json: what base=latest starts from)"])


def main(argv: list[str] | None = None) -> int:
    from tasks.pipeline.config import default_store_uri

    parser = argparse.ArgumentParser(prog="python -m tasks.registry", description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default=None, help="store URI (default: CAPTCHA_STORE, else ./store)")
    # --store after the command too (`registry list --store X`): there it only sets what is given.
    store_option = argparse.ArgumentParser(add_help=False)
    store_option.add_argument("--store", default=argparse.SUPPRESS, help="store URI")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="every version, newest first, the champion marked", parents=[store_option])
    show = commands.add_parser("show", help="one version: its record and every decision about it",
                               parents=[store_option])
    show.add_argument("version")
    for name, text in (("promote", "make a version the champion"), ("rollback", "bring back the previous champion")):
        command = commands.add_parser(name, help=text, parents=[store_option])
        if name == "promote":
            command.add_argument("version")
        command.add_argument("--why", required=True, help="the reason, for the audit log")
        command.add_argument("--who", default=getpass.getuser(), help="who decides (default: this user)")
    commands.add_parser("bases", help="the base models runs can start from (the base setting), newest first",
                        parents=[store_option])
    gc = commands.add_parser("gc", help="remove old versions, runs and shard sets", parents=[store_option])
    gc.add_argument("--keep", type=int, required=True, help="versions and runs to keep, newest first")
    gc.add_argument("--unfinished", action="store_true",
                    help="also remove unfinished runs that never ran through the DAG (no task start recorded)")
    gc.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    args = parser.parse_args(argv)

    try:
        store = open_store(args.store or default_store_uri())
        if args.command == "list":
            champion = (read_champion(store)[0] or {}).get("version")
            print(version_table(list_versions(store), champion, read_history(store)))
        elif args.command == "show":
            record = _complete(store, args.version)
            decisions = [d for d in read_history(store) if args.version in (d["candidate"], d["from"])]
            print(json.dumps({"record": record, "folder": store.url(version_prefix(args.version).rstrip("/")),
                              "decisions": decisions}, indent=2, sort_keys=True))
        elif args.command == "bases":
            latest = store.get_json(LATEST_BASE)["version"] if store.exists(LATEST_BASE) else None
            print(base_table(list_bases(store), latest))
        elif args.command in ("promote", "rollback"):
            moved = (promote(store, args.version, args.why, args.who) if args.command == "promote"
                     else rollback(store, args.why, args.who))
            print(f"latest is now {moved['version']}")
        else:
            plan = plan_cleanup(store, args.keep, unfinished=args.unfinished)
            for key in plan.keys:
                print(("would remove " if args.dry_run else "removing ") + store.url(key))
            removed = 0 if args.dry_run else apply_cleanup(store, plan)
            print(f"{len(plan.versions)} versions, {len(plan.runs)} runs, {len(plan.shard_sets)} shard sets: "
                  f"{len(plan.keys)} objects {'would go' if args.dry_run else f'removed ({removed})'}")
    except (RegistryError, StoreError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
