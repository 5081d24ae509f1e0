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
});
