import pytest

from staffjobs.jobs import ERROR, SUCCESS, run_job, start_job
from staffjobs.registry import staff_job
from testsupport.staff import make_staff, sign_in

pytestmark = pytest.mark.django_db
SECRET = "EAAB-a-value-that-must-never-show"


@staff_job("test.count")
def count(job, ids, *, word="item"):
    for pk in ids:
        job.note(SUCCESS, f"{word} {pk} done")
        job.advance()


@staff_job("test.explode")
def explode(job, ids):
    job.note(SUCCESS, "first step done")
    raise RuntimeError(f"boom with {SECRET}")


def test_a_job_runs_once_however_often_its_message_arrives():
    job = start_job("test.count", title="Count", target_ids=[3, 4], params={"word": "row"})

    first, second = run_job(job.pk), run_job(job.pk)

    assert second is None
    assert (first.status, first.items_done, first.percent()) == ("finished", 2, 100)
    assert [line["text"] for line in first.outcome] == ["row 3 done", "row 4 done"]


def test_a_job_that_breaks_says_so_in_words_and_keeps_what_was_done():
    job = run_job(start_job("test.explode", title="Explode", target_ids=[1]).pk)

    assert job.status == "failed"
    assert job.outcome[0]["text"] == "first step done"
    assert job.outcome[-1]["level"] == ERROR and "RuntimeError" in job.outcome[-1]["text"]
    assert SECRET not in str(job.outcome)


def test_an_unknown_kind_is_refused_before_anything_is_stored():
    with pytest.raises(LookupError):
        start_job("test.nothing", title="Nothing")


def test_the_job_page_refreshes_while_it_runs_and_shows_what_happened(client):
    staff = make_staff("olga", superuser=True)
    sign_in(client, staff)
    job = start_job("test.count", title="Count rows", target_ids=[7], user=staff)
    url = f"/admin/staffjobs/staffjob/{job.pk}/change/"

    waiting = client.get(url).content.decode()
    run_job(job.pk)
    done = client.get(url).content.decode()

    assert '<meta http-equiv="refresh" content="2">' in waiting and "waiting for a worker" in waiting
    assert "http-equiv" not in done and "item 7 done" in done and 'value="100"' in done
