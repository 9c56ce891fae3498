"""The demo chat: log in by name, the chat page, and the user list with presence."""

from django import forms
from django.contrib.auth import get_user_model, login, logout
from django.contrib.auth.models import AbstractUser
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from freeim import im

from .receivers import CHAT_META


class NameForm(forms.Form):
    name = forms.CharField(label="Pick a name", max_length=150, validators=[UnicodeUsernameValidator()],
                           widget=forms.TextInput(attrs={"autofocus": True}))


@require_http_methods(["GET", "POST"])
def index(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return render(request, "chat/chat.html", {"config": {"meta": CHAT_META, "me": request.user.pk}})
    form = NameForm(request.POST or None)
    if form.is_valid():
        # Demo only: a name is all it takes for the users this form made, which have no password
        # and cannot log in any other way. Anyone else is not for taking: a staff session could
        # broadcast and force users offline, and a user with a password chose to be protected.
        user, created = get_user_model().objects.get_or_create(username=form.cleaned_data["name"])
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        if not may_log_in_by_name(user):
            form.add_error("name", "This user has a password or staff rights: log in with its password at /admin/, "
                                   "then come back.")
            return render(request, "chat/login.html", {"form": form})
        login(request, user)
        return redirect("chat:index")
    return render(request, "chat/login.html", {"form": form})


def may_log_in_by_name(user: AbstractUser) -> bool:
    """Only plain users without a usable password: never staff or superusers, never a password's owner."""
    return not (user.has_usable_password() or user.is_staff or user.is_superuser)


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)
    return redirect("chat:index")


def users(request: HttpRequest) -> JsonResponse:
    """Every user with its presence, from one batched ``has_online`` call."""
    if not request.user.is_authenticated:
        return JsonResponse({"detail": "Log in first."}, status=403)
    people = list(get_user_model().objects.order_by("username").values_list("pk", "username"))
    online = im.has_online([pk for pk, _name in people])
    return JsonResponse([{"id": pk, "name": name, "online": online[pk]} for pk, name in people], safe=False)
