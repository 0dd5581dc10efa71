// Passkeys for Pollstr's forms (the only script of the site; loaded only by the pages that use
// passkeys). A form with data-passkey="create" or "get" carries the server's request in
// data-options (JSON, WebAuthn's options with binary values in base64url), or names in
// data-begin where to ask for one (a POST with the form's CSRF token: the login page, which
// starts no session until a passkey is wanted); on submit the browser is asked, its answer goes
// into the form's hidden "credential" field as JSON, and the form is sent as any other.
// data-conditional also asks, on load, for passkey autofill in the username field (conditional
// mediation). Without WebAuthn nothing here runs and the elements marked data-passkey-only
// stay hidden: every page works by its other factors.
(function () {
  "use strict";
  var PKC = window.PublicKeyCredential;
  if (!PKC || !navigator.credentials || !window.JSON || !window.atob) {
    return;
  }

  function bytes(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) {
      b64 += "=";
    }
    var raw = window.atob(b64);
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) {
      out[i] = raw.charCodeAt(i);
    }
    return out.buffer;
  }

  function text(buffer) {
    if (!buffer) {
      return null;
    }
    var view = new Uint8Array(buffer);
    var raw = "";
    for (var i = 0; i < view.length; i++) {
      raw += String.fromCharCode(view[i]);
    }
    return window.btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function decodeIds(list) {
    (list || []).forEach(function (c) {
      c.id = bytes(c.id);
    });
  }

  function decode(options) {
    var pk = options.publicKey;
    pk.challenge = bytes(pk.challenge);
    if (pk.user) {
      pk.user.id = bytes(pk.user.id);
    }
    decodeIds(pk.excludeCredentials);
    decodeIds(pk.allowCredentials);
    delete options.mediation;
    return options;
  }

  function request(form) {
    var begin = form.getAttribute("data-begin");
    if (!begin) {
      return Promise.resolve(decode(JSON.parse(form.getAttribute("data-options"))));
    }
    var token = form.querySelector("input[name=csrf_token]");
    var body = new URLSearchParams();
    body.append("csrf_token", token ? token.value : "");
    return fetch(begin, { method: "POST", body: body, credentials: "same-origin" })
      .then(function (res) {
        if (!res.ok) {
          throw new Error("no passkey request");
        }
        return res.json();
      })
      .then(decode);
  }

  function extensions(c) {
    return c.getClientExtensionResults ? c.getClientExtensionResults() : {};
  }

  function answer(c) {
    var r = c.response;
    var out = { id: c.id, rawId: text(c.rawId), type: c.type, extensions: extensions(c) };
    if (r.attestationObject) {
      out.response = {
        attestationObject: text(r.attestationObject),
        clientDataJSON: text(r.clientDataJSON)
      };
    } else {
      out.response = {
        authenticatorData: text(r.authenticatorData),
        clientDataJSON: text(r.clientDataJSON),
        signature: text(r.signature),
        userHandle: text(r.userHandle)
      };
    }
    return JSON.stringify(out);
  }

  function say(form, message) {
    var note = form.querySelector(".passkey-note");
    if (!note) {
      note = document.createElement("p");
      note.className = "alert alert-error passkey-note";
      note.setAttribute("role", "alert");
      form.insertBefore(note, form.firstChild);
    }
    note.textContent = message;
  }

  // The autofill request of a form, aborted when its button asks instead.
  var pending = null;

  function ask(form, conditional) {
    var kind = form.getAttribute("data-passkey");
    if (pending) {
      pending.abort();
      pending = null;
    }
    return request(form).then(function (options) {
      if (conditional && window.AbortController) {
        pending = new AbortController();
        options.mediation = "conditional";
        options.signal = pending.signal;
      }
      return kind === "create" ?
        navigator.credentials.create(options) :
        navigator.credentials.get(options);
    }).then(function (c) {
      pending = null;
      form.querySelector("input[name=credential]").value = answer(c);
      form.submit();
    });
  }

  function wire(form) {
    if (form.hasAttribute("data-conditional") && PKC.isConditionalMediationAvailable) {
      PKC.isConditionalMediationAvailable().then(function (yes) {
        if (yes) {
          ask(form, true).catch(function () {});
        }
      });
    }
    form.addEventListener("submit", function (e) {
      if (form.querySelector("input[name=credential]").value) {
        return;
      }
      e.preventDefault();
      ask(form, false).catch(function () {
        say(form, "The passkey prompt was closed or did not work. Please try again.");
      });
    });
  }

  document.querySelectorAll("[data-passkey-only]").forEach(function (e) {
    e.hidden = false;
  });
  document.querySelectorAll("[data-passkey-none]").forEach(function (e) {
    e.hidden = true;
  });
  document.querySelectorAll("form[data-passkey]").forEach(wire);
})();
