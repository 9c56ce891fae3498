"""The demo's admin: chat groups are freeim's (``freeim.groups``); Django's permission groups are left out.

Beside "Chat groups", auth's "Groups" (permission groups, which the demo does not use) read as the same thing.
A project that uses permission groups keeps them: this is the demo's choice, not freeim's.
"""

from django.contrib import admin
from django.contrib.auth.models import Group

admin.site.unregister(Group)
admin.site.site_header = admin.site.site_title = "freeim demo administration"
