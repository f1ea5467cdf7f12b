# NOTE to the engineer building this app: FIRST read /tmp/brief.md (team conventions, runtime API,
# test fixtures, and which shared files you must not edit; no git commands). Delete this note when done.
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


@login_required
def index(request: HttpRequest) -> HttpResponse:
    return render(request, "research/index.html")
