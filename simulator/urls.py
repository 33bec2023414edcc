app_name = "simulator"

urlpatterns: list = []
