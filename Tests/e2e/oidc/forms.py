"""A small user agent on `requests`: follows redirects one by one, reads the HTML forms of Twofold's pages (with their
hidden CSRF fields) and submits them as a browser would. It stops at a relying party's redirect URI, so tests read
the authorization response (`code`, `state`, `iss`) without anything listening there."""
import html.parser
import urllib.parse

import requests


class Form:
    def __init__(self, action, method, form_id):
        self.action = action
        self.method = method
        self.id = form_id
        self.fields = []      # (name, value) in document order, as a browser would send them
        self.inputs = {}      # name -> attributes of every named input
        self.buttons = []     # attributes of submit buttons

    def names(self):
        return set(self.inputs)

    def __repr__(self):
        return f"<form action={self.action!r} fields={[name for name, _ in self.fields]} buttons={[b.get('id') for b in self.buttons]}>"


class _FormParser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms = []
        self.current = None
        self.ids = set()
        self._textarea = None

    def handle_starttag(self, tag, attrs):
        attributes = {name: (value if value is not None else "") for name, value in attrs}
        if "id" in attributes:
            self.ids.add(attributes["id"])
        if tag == "form":
            self.current = Form(attributes.get("action", ""), attributes.get("method", "get").lower(), attributes.get("id"))
            self.forms.append(self.current)
            return
        if self.current is None:
            return
        if tag == "input":
            kind = attributes.get("type", "text").lower()
            name = attributes.get("name")
            if kind in ("submit", "image", "button"):
                self.current.buttons.append(attributes)
                return
            if not name:
                return
            self.current.inputs[name] = attributes
            if kind in ("checkbox", "radio") and "checked" not in attributes:
                return
            self.current.fields.append((name, attributes.get("value", "on" if kind in ("checkbox", "radio") else "")))
        elif tag == "button":
            if attributes.get("type", "submit").lower() == "submit":
                self.current.buttons.append(attributes)
        elif tag == "textarea" and attributes.get("name"):
            self.current.inputs[attributes["name"]] = attributes
            self._textarea = [attributes["name"], ""]
        elif tag == "select" and attributes.get("name"):
            self.current.inputs[attributes["name"]] = attributes

    def handle_data(self, data):
        if self._textarea is not None:
            self._textarea[1] += data

    def handle_endtag(self, tag):
        if tag == "textarea" and self._textarea is not None and self.current is not None:
            self.current.fields.append(tuple(self._textarea))
            self._textarea = None
        if tag == "form":
            self.current = None


class Page:
    def __init__(self, response):
        self.response = response
        self.url = response.url
        self.status = response.status_code
        self.html = response.text
        parser = _FormParser()
        parser.feed(self.html)
        self.forms = parser.forms
        self.ids = parser.ids

    def form_with(self, *names, button=None):
        """The first form that has inputs named `names` (and the submit button with id `button`)."""
        for form in self.forms:
            if set(names) <= form.names() and (button is None or any(b.get("id") == button for b in form.buttons)):
                return form
        raise AssertionError(f"no form with {names} {button or ''} on {self.url} ({self.status}): {self.forms}\n{self.html[:3000]}")

    def value_of(self, name):
        for form in self.forms:
            if name in form.inputs:
                return form.inputs[name].get("value", "")
        return None

    def __repr__(self):
        return f"<page {self.status} {self.url}>"


class Redirected:
    """The user agent was sent to a URL it must not follow (a relying party's redirect URI): the authorization
    or logout response."""

    def __init__(self, url, status):
        self.url = url
        self.status = status
        parsed = urllib.parse.urlsplit(url)
        self.base = urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, parsed.path, "", ""))
        self.params = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        self.fragment = parsed.fragment

    def __repr__(self):
        return f"<redirect {self.status} to {self.url}>"


class UserAgent:
    def __init__(self, stop_at=()):
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) twofold-e2e-oidc"
        self.stop_at = list(stop_at)
        self.history = []

    def stops(self, url):
        return any(url == prefix or url.startswith(prefix + "?") or url.startswith(prefix + "#") for prefix in self.stop_at)

    def open(self, url, method="GET", data=None, max_hops=15):
        """Requests `url` and follows redirects until a page (Page) or a relying party's URL (Redirected)."""
        for _ in range(max_hops):
            if self.stops(url):
                return Redirected(url, None)
            response = self.session.request(method, url, data=data, allow_redirects=False, timeout=30)
            self.history.append((method, url, response.status_code))
            if response.is_redirect or response.status_code in (301, 302, 303, 307, 308):
                location = urllib.parse.urljoin(url, response.headers["Location"])
                if self.stops(location):
                    return Redirected(location, response.status_code)
                if response.status_code not in (307, 308):
                    method, data = "GET", None
                url = location
                continue
            return Page(response)
        raise AssertionError(f"too many redirects: {self.history[-max_hops:]}")

    def submit(self, page, form, button=None, **values):
        """Submits `form` of `page` with `values` filled in (and `button`'s name=value, if it has one)."""
        fields = [(name, value) for name, value in form.fields if name not in values]
        fields += [(name, value) for name, value in values.items() if value is not None]
        pressed = None
        if button is not None:
            pressed = next((b for b in form.buttons if b.get("id") == button), None)
            assert pressed is not None, f"no button #{button} in {form}"
            if pressed.get("name"):
                fields.append((pressed["name"], pressed.get("value", "")))
        target = (pressed or {}).get("formaction") or form.action or page.url
        action = urllib.parse.urljoin(page.url, target)
        if form.method == "post":
            return self.open(action, "POST", data=fields)
        separator = "&" if "?" in action else "?"
        return self.open(action + separator + urllib.parse.urlencode(fields))
