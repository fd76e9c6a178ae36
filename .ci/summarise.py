"""Read trial's output and print the closing line CI looks for: "N passed, N failed".

trial ends with "PASSED (successes=N, skips=K)" or "FAILED (failures=F, errors=E, successes=N)".
"""

import re
import sys


def main(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    summary = None
    for line in text.splitlines():
        if re.match(r"^(PASSED|FAILED) \(", line.strip()):
            summary = line.strip()
    if summary is None:
        print("0 passed, 1 failed")
        return
    counts = dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", summary))
    passed = counts.get("successes", 0)
    failed = sum(counts.get(k, 0) for k in ("failures", "errors", "unexpectedSuccesses"))
    skipped = counts.get("skips", 0)
    line = f"{passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    print(line)


if __name__ == "__main__":
    main(sys.argv[1])
