// Small progressive enhancements; every page works without them.
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-copy]").forEach((button) => {
    button.addEventListener("click", async () => {
      const list = document.getElementById(button.dataset.copy);
      const text = Array.from(list.querySelectorAll("code")).map((c) => c.textContent).join("\n");
      try { await navigator.clipboard.writeText(text); button.textContent = "Copied"; } catch { button.textContent = "Select and copy the codes"; }
    });
  });
  document.querySelectorAll("[data-print]").forEach((button) => button.addEventListener("click", () => window.print()));
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => { if (!window.confirm(form.dataset.confirm)) event.preventDefault(); });
  });
  // Waiting pages (push approval, device enrollment): poll a status URL and continue once something happened.
  document.querySelectorAll("[data-poll-url]").forEach((element) => {
    const form = document.getElementById(element.dataset.pollForm);
    const done = (element.dataset.pollDone || "approved,denied,expired").split(",");
    const poll = async () => {
      try {
        const response = await fetch(element.dataset.pollUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" });
        const body = await response.json();
        if (done.includes(body.status)) { form.submit(); return; }
      } catch { /* keep waiting; the button still works */ }
      setTimeout(poll, 1500);
    };
    setTimeout(poll, 1500);
  });
  // Passkeys: fetch the ceremony options from the JSON API, let the browser talk to the authenticator, then post
  // the credential (WebAuthn JSON, base64url fields) with the form.
  const b64u = {
    decode: (text) => Uint8Array.from(atob(text.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(text.length / 4) * 4, "=")), (c) => c.charCodeAt(0)).buffer,
    encode: (buffer) => btoa(String.fromCharCode(...new Uint8Array(buffer))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, ""),
  };
  const withIds = (list) => (list || []).map((c) => ({ ...c, id: b64u.decode(c.id) }));
  const creationOptions = (o) => PublicKeyCredential.parseCreationOptionsFromJSON ? PublicKeyCredential.parseCreationOptionsFromJSON(o)
    : { ...o, challenge: b64u.decode(o.challenge), user: { ...o.user, id: b64u.decode(o.user.id) }, excludeCredentials: withIds(o.excludeCredentials) };
  const requestOptions = (o) => PublicKeyCredential.parseRequestOptionsFromJSON ? PublicKeyCredential.parseRequestOptionsFromJSON(o)
    : { ...o, challenge: b64u.decode(o.challenge), allowCredentials: withIds(o.allowCredentials) };
  const credentialJSON = (credential) => {
    if (typeof credential.toJSON === "function") return credential.toJSON();
    const r = credential.response;
    const json = { id: credential.id, rawId: b64u.encode(credential.rawId), type: credential.type, authenticatorAttachment: credential.authenticatorAttachment,
      clientExtensionResults: credential.getClientExtensionResults(), response: { clientDataJSON: b64u.encode(r.clientDataJSON) } };
    if (r.attestationObject) {
      json.response.attestationObject = b64u.encode(r.attestationObject);
      json.response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      json.response.authenticatorData = b64u.encode(r.authenticatorData);
      json.response.signature = b64u.encode(r.signature);
      json.response.userHandle = r.userHandle ? b64u.encode(r.userHandle) : null;
    }
    return json;
  };
  document.querySelectorAll("form[data-webauthn]").forEach((form) => {
    const error = form.querySelector("[data-webauthn-error]");
    const show = (message) => { if (error) { error.textContent = message; error.hidden = false; } };
    form.addEventListener("submit", async (event) => {
      if (form.elements.credential.value) return;
      event.preventDefault();
      if (!window.PublicKeyCredential || !navigator.credentials) { show("This browser cannot use passkeys. Use another method."); return; }
      const password = form.elements.password;
      try {
        const response = await fetch(form.dataset.optionsUrl, {
          method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": form.elements.csrf.value },
          body: JSON.stringify(password ? { password: password.value } : {}),
        });
        const options = await response.json();
        if (!response.ok) { show(options.reason || "Twofold could not start the passkey request."); return; }
        const credential = form.dataset.webauthn === "register"
          ? await navigator.credentials.create({ publicKey: creationOptions(options) })
          : await navigator.credentials.get({ publicKey: requestOptions(options) });
        form.elements.credential.value = JSON.stringify(credentialJSON(credential));
        if (password) password.value = "";
        form.submit();
      } catch (e) {
        show(e && e.name === "NotAllowedError"
          ? "The passkey request was cancelled or timed out, or this device has no passkey for Twofold. Try again or use another method."
          : e && e.name === "InvalidStateError" ? "This passkey or security key is already registered."
          : "The passkey request failed: " + (e && e.message ? e.message : e));
      }
    });
  });
});
