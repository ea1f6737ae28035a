#!/usr/bin/env python3
"""Counts individual test cases across Bazel runs and prints `N passed, N failed`.

Input: Bazel build-event JSON files (--build_event_json_file), one per
configuration. Each testResult event names the test.xml that run wrote; every
<testcase> in it counts once per configuration. A test target that failed to
build, timed out or crashed without writing XML counts as one failed case, so
a broken build can never look green.

--extra FILE (repeatable) adds results that did not come from bazel test:
one line per case, "<config> <name> PASS|FAIL [detail]" (crpc.sh's fuzz
smoke writes one per fuzz target). A missing or empty file counts as one
failed case: the step that should have written it did not run.
"""
import json
import os
import sys
import urllib.parse
import xml.etree.ElementTree as ET


def events(path):
    if not os.path.exists(path):
        return
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                yield json.loads(line)


def xml_cases(path):
    """Yields (name, outcome) for each testcase; outcome: pass, fail or skip."""
    root = ET.parse(path).getroot()
    for case in root.iter("testcase"):
        name = "%s.%s" % (case.get("classname", ""), case.get("name", ""))
        if case.find("failure") is not None or case.find("error") is not None:
            yield name, "fail"
        elif case.get("status") == "notrun" or case.find("skipped") is not None:
            yield name, "skip"
        else:
            yield name, "pass"


def summarize(path):
    """Returns (passed, failed, skipped, failure names) for one BEP file."""
    config = os.path.basename(path).rsplit(".", 1)[0]
    passed = failed = skipped = 0
    failures = []
    targets_with_xml = set()
    summaries = {}
    for ev in events(path):
        eid = ev.get("id", {})
        if "testResult" in eid:
            label = eid["testResult"]["label"]
            status = ev.get("testResult", {}).get("status", "NO_STATUS")
            for out in ev.get("testResult", {}).get("testActionOutput", []):
                if out.get("name") != "test.xml":
                    continue
                xml_path = urllib.parse.urlparse(out["uri"]).path
                try:
                    cases = list(xml_cases(xml_path))
                except (OSError, ET.ParseError):
                    cases = []
                if not cases:
                    continue
                targets_with_xml.add(label)
                for name, outcome in cases:
                    if outcome == "pass":
                        passed += 1
                    elif outcome == "skip":
                        skipped += 1
                    else:
                        failed += 1
                        failures.append("%s %s %s" % (config, label, name))
                if status != "PASSED" and not any(o == "fail" for _, o in cases):
                    # The binary died after its cases passed (e.g. LSan at exit).
                    failed += 1
                    failures.append("%s %s (%s after the cases ran)" % (config, label, status))
        elif "testSummary" in eid:
            label = eid["testSummary"]["label"]
            summaries[label] = ev.get("testSummary", {}).get("overallStatus", "NO_STATUS")
        elif "targetCompleted" in eid and ev.get("aborted"):
            label = eid["targetCompleted"]["label"]
            summaries.setdefault(label, "FAILED_TO_BUILD")
    for label, status in summaries.items():
        if label not in targets_with_xml and status != "PASSED":
            failed += 1
            failures.append("%s %s (%s)" % (config, label, status))
    return passed, failed, skipped, failures


def summarize_extra(path):
    """(config, passed, failed, skipped, failure names) for an --extra file."""
    config = os.path.basename(path).rsplit(".", 1)[0]
    passed = failed = 0
    failures = []
    try:
        with open(path) as f:
            lines = [l.split() for l in f if l.strip()]
    except OSError:
        lines = []
    for fields in lines:
        if len(fields) >= 3 and fields[2] == "PASS":
            config = fields[0]
            passed += 1
        else:
            failed += 1
            failures.append(" ".join(fields))
    if not lines:
        failed += 1
        failures.append("%s (no results)" % path)
    return config, passed, failed, 0, failures


def main(argv):
    paths, extras = [], []
    it = iter(argv)
    for arg in it:
        if arg == "--extra":
            extras.append(next(it, ""))
        else:
            paths.append(arg)
    total_p = total_f = total_s = 0
    all_failures = []
    rows = [(os.path.basename(p).rsplit(".", 1)[0],) + summarize(p) for p in paths]
    rows += [summarize_extra(p) for p in extras]
    for config, p, f, s, failures in rows:
        print("%-8s %5d passed, %d failed, %d skipped" % (config, p, f, s))
        total_p, total_f, total_s = total_p + p, total_f + f, total_s + s
        all_failures += failures
    for line in all_failures:
        print("FAILED: " + line)
    if total_p + total_f == 0:
        print("no test cases ran")
        total_f = 1
    tail = ", %d skipped" % total_s if total_s else ""
    print("%d passed, %d failed%s" % (total_p, total_f, tail))
    return 1 if total_f else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
