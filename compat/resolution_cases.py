"""The resolution table: tests/resolution/*.case, and their expected verdicts
(*.expected), shared by the recorder and the differential test.

A .case file has sections:  [aliases] [virtusertable] [local-host-names]
[virtuser-domains] [users] [include NAME] ... [verify].  `@DIR@` in aliases
and includes stands for the directory holding the include files.  Each
[verify] line is an address given to `sendmail -bv`.

A .expected file holds, per address:  `### ADDRESS`, the output lines of
`sendmail -bv` (without -v), and `exit=N`.
"""

import os
import re
import subprocess

CASES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "resolution")


def parse_case(path):
    sections = {}
    includes = {}
    name = None
    with open(path) as f:
        for raw in f:
            line = raw.rstrip("\n")
            m = re.match(r"^\[(.+)\]$", line)
            if m:
                name = m.group(1)
                if name.startswith("include "):
                    includes[name.split(" ", 1)[1]] = []
                else:
                    sections.setdefault(name, [])
                continue
            if name is None:
                continue
            if name.startswith("include "):
                includes[name.split(" ", 1)[1]].append(line)
            else:
                sections[name].append(line)
    text = {k: "\n".join(v).strip("\n") + "\n" for k, v in sections.items()}
    verify = [l for l in sections.get("verify", []) if l.strip() and not l.startswith("#")]
    users = [l.strip() for l in sections.get("users", []) if l.strip()]
    return {
        "aliases": text.get("aliases", ""),
        "virtusertable": "\n".join(l for l in sections.get("virtusertable", []) if l.strip()) + "\n",
        "local-host-names": text.get("local-host-names", ""),
        "virtuser-domains": text.get("virtuser-domains", ""),
        "users": users,
        "includes": {k: "\n".join(v).strip("\n") + "\n" for k, v in includes.items()},
        "verify": verify,
    }


def parse_expected(path):
    out = {}
    cur = None
    with open(path) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if line.startswith("### "):
                cur = line[4:]
                out[cur] = {"lines": [], "exit": None}
            elif line.startswith("exit=") and cur is not None:
                out[cur]["exit"] = int(line[5:])
            elif cur is not None:
                out[cur]["lines"].append(line)
    return out


def case_files():
    return sorted(os.path.join(CASES, f) for f in os.listdir(CASES) if f.endswith(".case"))


def oracle_verdicts(case, oracle_dir, sm_oracle):
    """Run real sendmail 8 on a case; returns {address: {"lines", "exit"}}."""
    import shutil
    import tempfile
    inst = os.path.join(sm_oracle, "run", "table-" + os.path.basename(tempfile.mkdtemp()))
    os.makedirs(inst)
    src = tempfile.mkdtemp()
    try:
        files = {}
        for key in ("aliases", "virtusertable", "local-host-names", "virtuser-domains"):
            p = os.path.join(src, key)
            with open(p, "w") as f:
                f.write(case[key])
            files[key] = p
        users = os.path.join(src, "users")
        with open(users, "w") as f:
            f.write("\n".join(case["users"]) + "\n")
        extra = []
        for name, text in case["includes"].items():
            p = os.path.join(src, name)
            with open(p, "w") as f:
                f.write(text)
            extra.append(p)
        env = {"PATH": os.environ["PATH"], "SM_ORACLE": sm_oracle, "VIRTHOSTS": files["virtuser-domains"],
               "EXTRA_FILES": " ".join(extra)}
        subprocess.run([os.path.join(oracle_dir, "mkinst.sh"), inst, files["aliases"], files["virtusertable"],
                        files["local-host-names"], users], env=env, capture_output=True)
        out = {}
        for addr in case["verify"]:
            p = subprocess.run([os.path.join(oracle_dir, "sm.sh"), inst, "-bv", "--", addr], env=env,
                               capture_output=True)
            text = (p.stdout + p.stderr).decode("latin-1").replace(inst, "@DIR@")
            out[addr] = {"lines": [l for l in text.split("\n") if l], "exit": p.returncode}
        return out
    finally:
        shutil.rmtree(inst, ignore_errors=True)
        shutil.rmtree(src, ignore_errors=True)


def write_expected(path, verdicts, order):
    with open(path, "w") as f:
        for addr in order:
            v = verdicts[addr]
            f.write(f"### {addr}\n")
            for l in v["lines"]:
                f.write(l + "\n")
            f.write(f"exit={v['exit']}\n")
