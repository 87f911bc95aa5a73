"""Training of the refinement stage (docs/refinement.md): data mining and caching (:mod:`retime_train.data`), the
loop with checkpoints and resume (:mod:`retime_train.train`) and the ``retime train`` command
(:mod:`retime_train.cli`). Research tooling: the core ``retime`` package never imports it."""
