"""The pytest plugin as a user's suite meets it: Celery's fixture names, a real worker in the background, tasks
from ``shared_task`` modules, sync and async tests, settings from ``celery_config``."""

from __future__ import annotations

import pytest

pytest_plugins = ("pytester",)


def test_a_users_suite_runs_its_tasks_for_real(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        usertasks="""
        from celeriac import shared_task

        @shared_task
        def add(x, y):
            return x + y

        @shared_task(bind=True)
        async def who(self):
            return self.request.hostname
        """,
        conftest="""
        import pytest

        @pytest.fixture
        def celery_config():
            return {"task_acks_late": True}

        @pytest.fixture
        def celery_includes():
            return ["usertasks"]

        @pytest.fixture
        def celery_worker_parameters():
            return {"hostname": "tests@box"}
        """,
        test_user="""
        import asyncio
        from usertasks import add, who

        def test_sync(celery_app, celery_worker):
            assert celery_app.conf.task_acks_late is True
            assert add.delay(2, 3).get(timeout=20) == 5

        def test_async_task_and_names(celeriac_app, celeriac_worker):
            assert celeriac_worker.hostname == "tests@box"
            assert who.delay().get(timeout=20) == "tests@box"

        def test_no_worker_needed_for_eager(celery_app):
            celery_app.conf.task_always_eager = True
            assert add.delay(1, 1).get() == 2

        def test_zz_the_fixture_app_is_not_current_after_its_test():
            import celeriac
            from celeriac import App

            mine = App("mine")
            assert celeriac.current_app is mine
        """,
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
