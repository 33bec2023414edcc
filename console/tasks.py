from celery import shared_task

from . import first_screen


@shared_task(name="console.refresh_first_screen")
def refresh_first_screen() -> dict:
    snapshot = first_screen.refresh_snapshot()
    return {"computed_at": snapshot.computed_at.isoformat(), "seconds": round(snapshot.seconds, 3)}
