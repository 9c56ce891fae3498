"""The demo chat: the page, the per-tab login (by name, or by password), who I am, and the user list.

Every tab logs in on its own: the login answers a token (:mod:`.tokens`) that the page keeps in the
tab's ``sessionStorage`` and sends with each REST call, so two tabs of one browser are two users.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.hashers import make_password
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from freeim import im
from freeim.rest.parsers import JSONParser
from freeim.rest.views import freeim_exception_handler

from .receivers import CHAT_META
from .tokens import TabTokenAuthentication, issue, may_log_in_by_name


class LoginForm(forms.Form):
    name = forms.CharField(label="Pick a name", max_length=150, validators=[UnicodeUsernameValidator()],
                           widget=forms.TextInput(attrs={"autocomplete": "off"}))
    password = forms.CharField(label="Password", required=False, strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))

    def clean_name(self) -> str:
        """NFKC, as Django's user forms normalize names: fullwidth "ａｄｍｉｎ" is "admin"."""
        return str(get_user_model().normalize_username(self.cleaned_data["name"]))

    def clean_password(self) -> str:
        password: str = self.cleaned_data["password"]
        try:
            password.encode()
        except UnicodeEncodeError:  # a lone surrogate ("\ud800" in JSON): the hasher failed on it with a 500
            raise forms.ValidationError("The password is not valid text.") from None
        return password


@require_GET
@ensure_csrf_cookie  # for session-authenticated writes to the REST API (scripts, the tests' users)
def index(request: HttpRequest) -> HttpResponse:
    """The page: its script shows the login form in a tab without a token, else the chat."""
    return render(request, "chat/chat.html", {"form": LoginForm(), "config": {"meta": CHAT_META}})


def identity(user: AbstractBaseUser) -> dict[str, Any]:
    return {"id": user.pk, "name": user.get_username(), "is_staff": bool(getattr(user, "is_staff", False))}


class LoginView(APIView):
    """POST ``{"name", "password"}`` -> ``{"token", "id", "name", "is_staff"}``.

    Demo only: a name is all it takes for the users this form made, which have no password and cannot
    log in any other way (:func:`.tokens.may_log_in_by_name`); anyone else gives their password. A name
    is the user it names in any case ("Admin" is "admin"), so no one takes a look-alike of another's. No
    session is touched: the token is the tab's alone. Bodies are read as freeim's API reads them (JSON
    only, depth-limited, size-limited), and its errors answered as it answers them.
    """

    authentication_classes: list[Any] = []  # whoever the session cookie names is no one's business here
    permission_classes = [AllowAny]
    parser_classes = [JSONParser]

    def get_exception_handler(self) -> Any:
        return freeim_exception_handler

    def post(self, request: Request) -> Response:
        if not isinstance(request.data, dict):  # JSON that is not an object
            return Response({"detail": 'Send an object: {"name": ..., "password": ...}.'}, status=400)
        form = LoginForm(request.data)
        if not form.is_valid():
            return Response({field: [str(error) for error in errors] for field, errors in form.errors.items()},
                            status=400)
        name, password = form.cleaned_data["name"], form.cleaned_data["password"]
        if password:
            user = authenticate(request, username=name, password=password)
            if user is None:
                return Response({"password": ["Wrong name or password."]}, status=400)
        else:
            user = named(name)
            if user is None:
                return Response({"name": ["Users differ from this name only in case: give the exact name."]},
                                status=400)
            if not user.is_active:
                return Response({"name": ["This user is deactivated."]}, status=400)
            if not may_log_in_by_name(user):
                return Response({"password": ["This user has a password or staff rights: give its password."]},
                                status=400)
        return Response({"token": issue(user, by_name=not password), **identity(user)})


def named(name: str) -> AbstractBaseUser | None:
    """The user ``name`` names: the one with exactly that name, else the one with it in another case, else a new
    one; None when several have it in other cases (made before names were matched so, or by the admin)."""
    users = get_user_model()._default_manager
    field = users.model.USERNAME_FIELD
    if exact := users.filter(**{field: name}).first():
        return exact
    others = list(users.filter(**{f"{field}__iexact": name})[:2])
    if others:
        return others[0] if len(others) == 1 else None
    # Saved without a usable password at once: saved with "" first, a login racing for the same new name saw a
    # user with a password and was refused.
    user, _created = users.get_or_create(**{field: name}, defaults={"password": make_password(None)})
    return user


class TabView(APIView):
    """An endpoint of the chat page: the tab's token only, whatever else the project's REST API takes."""

    authentication_classes = [TabTokenAuthentication]


class MeView(TabView):
    """GET: who this tab is logged in as (a reloaded tab checks its token here)."""

    def get(self, request: Request) -> Response:
        return Response(identity(request.user))


class UsersView(TabView):
    """GET: every user with its presence, from one batched ``has_online`` call."""

    def get(self, request: Request) -> Response:
        people = list(get_user_model().objects.order_by("username").values_list("pk", "username"))
        online = im.has_online([pk for pk, _name in people])
        return Response([{"id": pk, "name": name, "online": online[pk]} for pk, name in people])
