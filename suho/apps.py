from django.apps import AppConfig


class SuhoConfig(AppConfig):
    name = "suho"
    verbose_name = "Suho platform"
