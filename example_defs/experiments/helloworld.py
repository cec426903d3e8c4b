"""The original JuQueue's hello world, with sleeps of seconds (it used hours)."""

from dataclasses import dataclass
from typing import List

from juqueue import ExecutorDef, ExperimentDef, RunDef


@dataclass
class Experiment(ExperimentDef):
    @property
    def name(self) -> str:
        return "helloworld"

    @property
    def runs(self) -> List[RunDef]:
        hello = RunDef(id="helloworld", experiment_name=self.name, cmd=["echo", "Hello world!"], cluster="local")
        runs = [
            hello,
            RunDef(id="python", experiment_name=self.name, cmd=["python3", "-V"], cluster="local",
                   executor=ExecutorDef(env={"GREETING": "hi"}, prepend_script=['echo "$GREETING from bash"'])),
        ]

        # an abstract template forked into runs that differ by their parameters
        template = RunDef.create_abstract(
            experiment_name=self.name, cluster="local",
            cmd=["python3", "-c", "import sys; print('args:', sys.argv[1:])"],
        )
        for lr in (0.1, 0.01):
            run = template.fork(f"params_lr{lr}")
            run.parameters = {"learning_rate": lr, "num_epochs": 2}  # --learning-rate 0.1 --num-epochs 2
            runs.append(run)

        # `path` is the run's own directory (resolved when the run starts): write a file there
        writer = RunDef(id="write_file", experiment_name=self.name, cluster="local",
                        cmd=["sh", "-c", 'echo done > "$1"', "sh"])
        writer.cmd.append(writer.path / "result.txt")
        runs.append(writer)

        # ... and read it once the writer completed; `self.path` is the experiment's directory
        runs.append(RunDef(id="read_file", experiment_name=self.name, cluster="local", depends_on=[writer, "helloworld"],
                           cmd=["cat", self.path / "write_file" / "result.txt"]))

        for delay in (1, 2, 3):
            runs.append(RunDef(id=f"sleep_{delay}", experiment_name=self.name, cmd=["sleep", delay], cluster="local"))
        return runs
