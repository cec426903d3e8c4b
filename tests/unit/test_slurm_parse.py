"""Parsers against output captured from a real SLURM 22.05.8 (scripts/setup-test-slurm.sh).

squeue lines come from
  squeue --me --noheader --states=all --format=$'%i\\x1f%j\\x1f%T\\x1f%L\\x1f%l\\x1f%N\\x1f%r\\x1f%k'
The test SLURM has no accounting storage, so sacct lines follow sacct's documented
--parsable2 layout (marked "constructed"); its real answer without accounting is quoted.
"""

from __future__ import annotations

import time

import pytest

from juqueue.backends.slurm_parse import (
    SQUEUE_FORMAT,
    SlurmJob,
    SlurmParseError,
    job_is_gone,
    parse_sacct,
    parse_sacct_line,
    parse_sbatch_parsable,
    parse_squeue,
    parse_squeue_line,
    parse_time,
)

S = "\x1f"


def sq(*fields: str) -> str:
    return S.join(fields)


# (raw squeue line, expected job) -- all captured from the real test SLURM
SQUEUE_SAMPLES = [
    (
        sq("4", "juqueue-cap-n1-tok1", "RUNNING", "1-02:03:59", "1-02:04:00", "vm", "None", "juqueue:tok1"),
        SlurmJob("4", "juqueue-cap-n1-tok1", "RUNNING", "juqueue:tok1", "vm", 93840, 93839, ""),
    ),
    (
        sq("5", "juqueue-cap-n2-tok2", "PENDING", "5:00", "5:00", "", "JobHeldUser", "juqueue:tok2"),
        SlurmJob("5", "juqueue-cap-n2-tok2", "PENDING", "juqueue:tok2", "", 300, 300, "JobHeldUser"),
    ),
    (
        sq("4", "juqueue-cap-n1-tok1", "CANCELLED", "1-02:03:53", "1-02:04:00", "vm", "None", "juqueue:tok1"),
        SlurmJob("4", "juqueue-cap-n1-tok1", "CANCELLED", "juqueue:tok1", "vm", 93840, 93833, ""),
    ),
    (
        sq(
            "7",
            "juqueue-averyveryveryverylongclustername-node-0007-0123456789abcdef0123456789abcdef",
            "CANCELLED", "UNLIMITED", "UNLIMITED", "vm", "None", "juqueue:has space|pipe",
        ),
        SlurmJob(
            "7",
            "juqueue-averyveryveryverylongclustername-node-0007-0123456789abcdef0123456789abcdef",
            "CANCELLED", "juqueue:has space|pipe", "vm", None, None, "",
        ),
    ),
    (
        sq("8", "juqueue-unl", "RUNNING", "UNLIMITED", "UNLIMITED", "vm", "None", "(null)"),
        SlurmJob("8", "juqueue-unl", "RUNNING", "", "vm", None, None, ""),
    ),
    (
        sq("11", "juqueue-fail", "FAILED", "UNLIMITED", "UNLIMITED", "vm", "NonZeroExitCode", "(null)"),
        SlurmJob("11", "juqueue-fail", "FAILED", "", "vm", None, None, "NonZeroExitCode"),
    ),
    (
        sq("9", "juqueue-t90", "RUNNING", "1:29:47", "1:30:00", "vm", "None", "(null)"),
        SlurmJob("9", "juqueue-t90", "RUNNING", "", "vm", 5400, 5387, ""),
    ),
    (
        sq("10", "juqueue-t1s", "RUNNING", "0:47", "1:00", "vm", "None", "(null)"),
        SlurmJob("10", "juqueue-t1s", "RUNNING", "", "vm", 60, 47, ""),
    ),
    (
        sq("20", "juqueue-dependent", "PENDING", "UNLIMITED", "UNLIMITED", "", "Dependency", "(null)"),
        SlurmJob("20", "juqueue-dependent", "PENDING", "", "", None, None, "Dependency"),
    ),
    (
        sq("21", "juqueue-big", "PENDING", "UNLIMITED", "UNLIMITED", "", "PartitionConfig", "(null)"),
        SlurmJob("21", "juqueue-big", "PENDING", "", "", None, None, "PartitionConfig"),
    ),
    (  # a job killed at its time limit: squeue cannot compute a time left
        sq("18", "juqueue-timeout", "TIMEOUT", "INVALID", "1:00", "vm", "TimeLimit", "(null)"),
        SlurmJob("18", "juqueue-timeout", "TIMEOUT", "", "vm", 60, None, "TimeLimit"),
    ),
    (
        sq("19", "juqueue-dep", "COMPLETED", "1:59", "2:00", "vm", "None", "(null)"),
        SlurmJob("19", "juqueue-dep", "COMPLETED", "", "vm", 120, 119, ""),
    ),
    # constructed: a multi-node list as real clusters print it
    (
        sq("123456", "jq-gpu-1-abc", "RUNNING", "23:59:58", "1-00:00:00", "jwb[0001-0002]", "None", "juqueue:abc"),
        SlurmJob("123456", "jq-gpu-1-abc", "RUNNING", "juqueue:abc", "jwb[0001-0002]", 86400, 86398, ""),
    ),
]


@pytest.mark.parametrize("line, expected", SQUEUE_SAMPLES)
def test_squeue_line(line: str, expected: SlurmJob) -> None:
    assert parse_squeue_line(line) == expected


def test_squeue_format_matches_the_parser_field_order() -> None:
    assert SQUEUE_FORMAT == S.join(["%i", "%j", "%T", "%L", "%l", "%N", "%r", "%S", "%k"])


def test_squeue_start_time_of_a_running_job_and_none_while_pending() -> None:
    """%S (added for billing) stands before the comment; lines of the older format still parse."""
    running = parse_squeue_line(sq("7", "juqueue-c-n1-t", "RUNNING", "2:00", "3:00", "vm", "None", "2026-11-30T11:42:00", "juqueue:t"))
    assert running.start_time == time.mktime(time.strptime("2026-11-30T11:42:00", "%Y-%m-%dT%H:%M:%S"))
    assert running.comment == "juqueue:t"
    pending = parse_squeue_line(sq("8", "juqueue-c-n2-t", "PENDING", "3:00", "3:00", "", "Priority", "2026-11-30T12:00:00", "juqueue:t"))
    assert pending.start_time is None  # an expected start bills nothing
    unknown = parse_squeue_line(sq("9", "juqueue-c-n3-t", "RUNNING", "3:00", "3:00", "vm", "None", "N/A", "juqueue:t"))
    assert unknown.start_time is None


def test_squeue_output_filtered_by_prefix() -> None:
    # a real `squeue --states=all` answer, including the setup script's srun ("echo") and a
    # job of another tool whose name has a space
    output = "\n".join(
        [
            sq("1", "echo", "COMPLETED", "1:00", "1:00", "vm", "None", "(null)"),
            sq("6", "other job", "COMPLETED", "UNLIMITED", "UNLIMITED", "vm", "None", "(null)"),
            sq("5", "juqueue-cap-n2-tok2", "PENDING", "5:00", "5:00", "", "JobHeldUser", "juqueue:tok2"),
            "garbage from a foreign job\twith no separators",
            sq("9", "juqueue-t90", "RUNNING", "1:29:47", "1:30:00", "vm", "None", "(null)"),
        ]
    ) + "\n"
    jobs = parse_squeue(output, "juqueue-")
    assert [j.job_id for j in jobs] == ["5", "9"]
    assert parse_squeue("", "juqueue-") == []


@pytest.mark.parametrize(
    "line",
    [
        sq("x12", "juqueue-a", "RUNNING", "1:00", "1:00", "vm", "None", "(null)"),
        sq("12", "juqueue-a", "running?", "1:00", "1:00", "vm", "None", "(null)"),
        sq("12", "juqueue-a", "RUNNING", "soon", "1:00", "vm", "None", "(null)"),
        sq("12", "juqueue-a", "RUNNING", "1:00"),
    ],
)
def test_squeue_garbage_fails_loudly_quoting_the_line(line: str) -> None:
    with pytest.raises(SlurmParseError) as info:
        parse_squeue(line, "juqueue-")
    assert repr(line) in str(info.value)
    assert "(?P<" in str(info.value)  # the pattern is quoted too


@pytest.mark.parametrize(
    "stdout, job_id",
    [
        ("4\n", "4"),  # real
        ("13\n", "13"),  # real
        ("123456;jureca\n", "123456"),  # federation / -M form, as documented
        ("  77  \n", "77"),
    ],
)
def test_sbatch_parsable(stdout: str, job_id: str) -> None:
    assert parse_sbatch_parsable(stdout) == job_id


@pytest.mark.parametrize("stdout", ["", "Submitted batch job 12\n", "12;\n", "abc\n"])
def test_sbatch_parsable_garbage_fails_quoting_raw(stdout: str) -> None:
    with pytest.raises(SlurmParseError, match="sbatch --parsable output") as info:
        parse_sbatch_parsable(stdout)
    assert repr(stdout) in str(info.value)


SACCT_SAMPLES = [  # constructed after sacct --parsable2 --noheader -X --format=JobID,...,Comment
    (
        "123|jq-gpu-1-abc|COMPLETED|jwb0001|1-00:00:00|None|juqueue:abc",
        SlurmJob("123", "jq-gpu-1-abc", "COMPLETED", "juqueue:abc", "jwb0001", 86400, None, ""),
    ),
    (
        "124|jq-gpu-2-def|CANCELLED by 1000|jwb0002|01:00:00|None|juqueue:def",
        SlurmJob("124", "jq-gpu-2-def", "CANCELLED", "juqueue:def", "jwb0002", 3600, None, ""),
    ),
    (
        "125|jq-gpu-3-ghi|TIMEOUT|jwb0003|00:03:00|None|",
        SlurmJob("125", "jq-gpu-3-ghi", "TIMEOUT", "", "jwb0003", 180, None, ""),
    ),
    (
        "126|jq-gpu-4-jkl|PENDING|None assigned|UNLIMITED|Priority|juqueue:a|b",
        SlurmJob("126", "jq-gpu-4-jkl", "PENDING", "juqueue:a|b", "", None, None, "Priority"),
    ),
    (
        "127|jq-x|NODE_FAIL|jwb0005|Partition_Limit|None|",
        SlurmJob("127", "jq-x", "NODE_FAIL", "", "jwb0005", None, None, ""),
    ),
]


@pytest.mark.parametrize("line, expected", SACCT_SAMPLES)
def test_sacct_line(line: str, expected: SlurmJob) -> None:
    assert parse_sacct_line(line) == expected


def test_sacct_requeued_job_last_record_wins() -> None:
    out = "130|jq-a|REQUEUED|n1|01:00:00|None|juqueue:a\n130|jq-a|RUNNING|n2|01:00:00|None|juqueue:a\n"
    assert parse_sacct(out)["130"].state == "RUNNING"


def test_sacct_garbage_fails() -> None:
    with pytest.raises(SlurmParseError, match="sacct line"):
        parse_sacct("Slurm accounting storage is disabled\n")


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("5", 300),  # MM
        ("90", 5400),
        ("5:00", 300),  # MM:SS
        ("0:47", 47),
        ("1:29:47", 5387),  # HH:MM:SS
        ("00:03:00", 180),
        ("2-0", 172800),  # D-HH
        ("1-12", 129600),
        ("1-02:04", 93840),  # D-HH:MM
        ("1-02:04:00", 93840),  # D-HH:MM:SS
        ("1-02:03:53", 93833),
        ("UNLIMITED", None),
        ("INFINITE", None),
        ("NOT_SET", None),
    ],
)
def test_parse_time(text: str, seconds: int | None) -> None:
    assert parse_time(text) == seconds


@pytest.mark.parametrize("text", ["", "1:2:3:4", "-5", "1-", "abc", "1.5"])
def test_parse_time_garbage(text: str) -> None:
    with pytest.raises(SlurmParseError, match="SLURM time"):
        parse_time(text)


@pytest.mark.parametrize(
    "state, gone",
    [
        ("COMPLETED", True), ("CANCELLED", True), ("CANCELLED by 0", True), ("CANCELLED+", True),
        ("FAILED", True), ("TIMEOUT", True), ("NODE_FAIL", True), ("PREEMPTED", True),
        ("OUT_OF_MEMORY", True), ("BOOT_FAIL", True), ("DEADLINE", True),
        ("PENDING", False), ("RUNNING", False), ("COMPLETING", False), ("CONFIGURING", False),
        ("SUSPENDED", False), ("REQUEUED", False), ("REQUEUE_HOLD", False), ("SPECIAL_EXIT", False),
        ("STOPPED", False), ("SIGNALING", False), ("RESIZING", False),
    ],
)
def test_job_is_gone(state: str, gone: bool) -> None:
    assert job_is_gone(state) is gone
