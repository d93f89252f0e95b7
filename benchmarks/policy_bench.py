"""Benchmark: `cygno-dm policy plan` / `apply` on a large catalogue, against per-dataset round trips.

Bulk-loads DATASETS datasets of FILES files each (default 10,000 x 100 = 1,000,000 files) with the profile's raw
rules into the Rucio database of a PostgreSQL testbed (straight into Rucio's tables, as a catalogue that grew
over years would be), leaving 5% of the datasets without their Bari rule and giving 5% an extra rule the policy
does not want. Then measures:

- plan: `replication.plan` (one dataset listing and one rule listing per scope over the REST API);
- the baseline: one `list_did_rules` round trip per dataset, timed on a sample and scaled to all datasets;
- apply: fixing --apply differences in batches of 100.

    nice -n 10 .venv/bin/python benchmarks/policy_bench.py                      # fresh PostgreSQL testbed
    nice -n 10 .venv/bin/python benchmarks/policy_bench.py --state DIR          # a running testbed
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
import uuid
from contextlib import nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCOPE = "cygno-data"
COMMENT = "cygno-dm ingest: profile replication"


def load(tb, datasets: int, files: int, chunk: int = 50_000) -> str:
    """Insert the catalogue with Rucio's models and the server's database session; return the dataset prefix."""
    os.environ["RUCIO_CONFIG"] = str(tb.rucio_cfg)
    from rucio.common.types import InternalAccount, InternalScope
    from rucio.db.sqla import models
    from rucio.db.sqla.constants import DIDType, RuleGrouping, RuleNotification, RuleState
    from rucio.db.sqla.session import get_session
    from sqlalchemy import insert

    scope, account = InternalScope(SCOPE), InternalAccount("rucio-daq")
    tag = uuid.uuid4().int % 9000 + 1000
    prefix = f"LNGS/bench{tag}"
    now = dt.datetime.utcnow().replace(microsecond=0)
    policy = tb.profile.replication["raw"]
    session = get_session()
    dids, contents, rules = [], [], []

    def flush(force: bool = False) -> None:
        for model, rows in ((models.DataIdentifier, dids), (models.DataIdentifierAssociation, contents),
                            (models.ReplicationRule, rules)):
            if rows and (force or len(rows) >= chunk):
                session.execute(insert(model), rows)
                rows.clear()
        session.commit()

    for d in range(datasets):
        ds = f"{prefix}-{d:05d}"
        dids.append({"scope": scope, "name": ds, "account": account, "did_type": DIDType.DATASET, "is_open": False,
                     "length": files, "bytes": files * 10**8})
        for f in range(files):
            name = f"LNGS/run9{tag}{d:05d}{f:03d}.mid.gz"  # run numbers above every real one
            dids.append({"scope": scope, "name": name, "account": account, "did_type": DIDType.FILE,
                         "bytes": 10**8, "adler32": "0a0b0c0d"})
            contents.append({"scope": scope, "name": ds, "child_scope": scope, "child_name": name,
                             "did_type": DIDType.DATASET, "child_type": DIDType.FILE, "bytes": 10**8,
                             "adler32": "0a0b0c0d"})
        wanted = policy if d % 20 != 7 else policy[:-1]  # 5%: the last rule is missing
        extra = [("BACKBONE_USERDISK", 1, None)] if d % 20 == 13 else []  # 5%: a rule the policy does not want
        for expr, copies, days in [(r.rse_expression, r.copies, r.lifetime_days) for r in wanted] + extra:
            rules.append({"id": uuid.uuid4().hex, "account": account, "scope": scope, "name": ds,
                          "did_type": DIDType.DATASET, "state": RuleState.OK, "rse_expression": expr,
                          "copies": copies, "locked": False, "grouping": RuleGrouping.DATASET,
                          "notification": RuleNotification.NO, "purge_replicas": False, "ignore_availability": False,
                          "ignore_account_limit": False, "split_container": False, "comments": COMMENT,
                          "created_at": now, "updated_at": now,
                          "expires_at": now + dt.timedelta(days=days) if days else None})
        if len(dids) >= chunk:
            flush()
    flush(force=True)
    session.close()
    return prefix


def main() -> int:
    """Load, plan, baseline, apply; print times and ratios."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--state", type=Path, default=None, help="a running testbed (default: a fresh PostgreSQL one)")
    ap.add_argument("--datasets", type=int, default=10_000)
    ap.add_argument("--files", type=int, default=100, help="files per dataset")
    ap.add_argument("--sample", type=int, default=300, help="datasets timed one round trip each (baseline)")
    ap.add_argument("--apply", type=int, default=200, help="differences fixed in the apply measurement")
    args = ap.parse_args()
    from cygno_dm import replication

    if args.state is None:
        from tests.conftest import running_testbed

        testbed = running_testbed("postgresql")
    else:
        from testbed.stack import Testbed

        testbed = nullcontext(Testbed(args.state))
    with testbed as tb:
        t0 = time.perf_counter()
        prefix = load(tb, args.datasets, args.files)
        print(f"loaded {args.datasets} datasets / {args.datasets * args.files} files in "
              f"{time.perf_counter() - t0:.1f}s ({tb.settings.database.split(':')[0]})")
        client = tb.client("root")
        t0 = time.perf_counter()
        diffs = [d for d in replication.plan(client, tb.profile) if d.name.startswith(prefix)]
        plan_s = time.perf_counter() - t0
        kinds = {k: sum(d.kind == k for d in diffs) for k in sorted({d.kind for d in diffs})}
        print(f"policy plan: {plan_s:.1f}s for {args.datasets} datasets ({kinds}); goal <= 60 s")
        expected = {"missing": args.datasets // 20 + (args.datasets % 20 > 7),
                    "unwanted": args.datasets // 20 + (args.datasets % 20 > 13)}
        assert kinds == expected, (kinds, expected)
        names = [f"{prefix}-{d:05d}" for d in range(min(args.sample, args.datasets))]
        t0 = time.perf_counter()
        for name in names:
            list(client.list_did_rules(SCOPE, name))
        per = (time.perf_counter() - t0) / len(names)
        print(f"baseline: one list_did_rules per dataset: {per * 1000:.1f} ms each, "
              f"{per * args.datasets:.1f}s for {args.datasets} datasets; plan is {per * args.datasets / plan_s:.1f}x "
              "faster")
        todo = diffs[:args.apply]
        t0 = time.perf_counter()
        summary = replication.apply(client, todo, "root", batch=100)
        apply_s = time.perf_counter() - t0
        print(f"policy apply: {len(todo)} differences in {apply_s:.1f}s ({len(todo) / apply_s:.1f}/s): {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
