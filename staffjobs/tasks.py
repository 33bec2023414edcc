from celery import shared_task

from . import jobs


@shared_task(name="staffjobs.run")
def run_staff_job(job_id: int) -> dict:
    job = jobs.run_job(job_id)
    return {"job": job_id, "status": job.status if job else "not queued"}
