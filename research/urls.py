from django.urls import path

from research import views

app_name = "research"
urlpatterns = [
    path("", views.index, name="index"),
    path("threads/new/", views.thread_create, name="thread_create"),
    path("threads/<int:pk>/", views.thread_detail, name="thread"),
    path("threads/<int:pk>/edit/", views.thread_update, name="thread_update"),
    path("threads/<int:pk>/delete/", views.thread_delete, name="thread_delete"),
    path("messages/<int:message_id>/sources/<int:number>/", views.citation, name="citation"),
    path("documents/<int:pk>/", views.document, name="document"),
    path("messages/<int:message_id>/feedback/", views.feedback, name="feedback"),
    path("collections/", views.collections, name="collections"),
    path("collections/<int:pk>/", views.collection_detail, name="collection"),
    path("collections/<int:pk>/sources/", views.collection_sources_partial, name="collection_sources"),
    path("collections/<int:pk>/settings/", views.collection_settings, name="collection_settings"),
    path("collections/<int:pk>/delete/", views.collection_delete, name="collection_delete"),
    path("collections/<int:pk>/add/", views.source_add, name="source_add"),
    path("collections/<int:pk>/reindex/", views.collection_reindex, name="collection_reindex"),
    path("sources/<int:pk>/delete/", views.source_delete, name="source_delete"),
    path("search/", views.search, name="search"),
]
