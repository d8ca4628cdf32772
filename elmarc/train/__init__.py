"""Training stage: every front-end trained end to end on the random protocol's splits.

    stage.py    the stage: keys the runs, lets one job train them, turns them into result rows
    trainer.py  the runs of one front-end (Lightning's Trainer.fit per split and learning rate)
    model.py    the trained counterpart of a random front-end (a LightningModule)
    history.py  the per-epoch record kept in each run's checkpoint
    data.py     what training reads: inputs, labels, crops and order fixed by (seed, epoch)

Lightning takes seconds to import: the pipeline imports this package only for jobs that train.
"""
