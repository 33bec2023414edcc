from django.apps import AppConfig


class StaffJobsConfig(AppConfig):
    name = "staffjobs"
    verbose_name = "Staff jobs"
