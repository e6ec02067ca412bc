"use strict";
document.getElementById("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const error = document.getElementById("login-error");
  error.textContent = "";
  try {
    const me = await cc.api("POST", "/api/v1/login", {
      username: document.getElementById("username").value,
      password: document.getElementById("password").value,
    });
    const next = new URLSearchParams(location.search).get("next");
    // Only same-site paths: never an open redirect.
    const safe = next && /^\/[a-z]+$/.test(next) ? next : (me.user.role === "agent" ? "/agent" : "/console");
    location.href = safe;
  } catch (e) {
    error.textContent = e.message;
  }
});
