"""`celery -A juqueue.workers.app inspect active` and Flower use this app.

It holds no configuration until first used, then reads the broker URL from the work dir
(JUQUEUE_WORK_DIR or the nearest work dir upwards), so no secret is on the command line.
"""

from juqueue.celery_app import make_celery_app, settings_from_work_dir

app = make_celery_app()
app.add_defaults(settings_from_work_dir)
