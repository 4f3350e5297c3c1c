// The merchant pages' one script (no inline scripts: the pages' CSP allows
// scripts from us and from App Bridge's CDN address only).
//
// Embedded in the Shopify admin, every request must carry a session token
// that lives one minute, and there are no cookies. So a fresh token is asked
// of App Bridge (shopify.idToken()) at the moment it is needed: when a link is
// followed (?id_token=), when a form is submitted (a hidden id_token field,
// filled just before the form goes, so a page left open for an hour still
// submits what was typed), and for every fetch (Authorization: Bearer).
// Source: shopify.dev "About session tokens" (fetch a new token for each
// request) and "Set up embedded app authorization" (id_token, the bounce page).
(function () {
  "use strict";
  var embedded = document.documentElement.dataset.embedded === "1";

  function freshToken() {
    return window.shopify.idToken();
  }

  // The bounce page: get a token, go back where we came from.
  function bounce() {
    var page = document.getElementById("bounce");
    if (!page) return;
    freshToken().then(function (token) {
      var target = new URL(page.dataset.reload, location.origin);
      if (target.origin !== location.origin) return;
      target.searchParams.set("id_token", token);
      location.replace(target.toString());
    });
  }

  function ourLink(link) {
    return link.origin === location.origin && link.pathname.indexOf("/app/") === 0 &&
      !link.hasAttribute("download") && link.target !== "_blank";
  }

  if (embedded) {
    document.addEventListener("click", function (event) {
      var link = event.target.closest && event.target.closest("a[href]");
      if (!link || !ourLink(link) || event.defaultPrevented || event.button !== 0 ||
          event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
      if (link.getAttribute("href").charAt(0) === "#") return;
      event.preventDefault();
      freshToken().then(function (token) {
        var target = new URL(link.href);
        target.searchParams.set("id_token", token);
        location.assign(target.toString());
      });
    });

    document.addEventListener("submit", function (event) {
      var form = event.target;
      if (form.dataset.tokened === "1") { delete form.dataset.tokened; return; }
      event.preventDefault();
      var submitter = event.submitter;
      freshToken().then(function (token) {
        var field = form.querySelector("input[name=id_token]");
        if (!field) {
          field = document.createElement("input");
          field.type = "hidden";
          field.name = "id_token";
          form.appendChild(field);
        }
        field.value = token;
        form.dataset.tokened = "1";
        form.requestSubmit(submitter || undefined);
      });
    });
  }

  // fetch() for the pages' own endpoints, authenticated in either mode.
  window.careloopFetch = function (url, options) {
    options = options || {};
    var headers = new Headers(options.headers || {});
    if (embedded) {
      return freshToken().then(function (token) {
        headers.set("Authorization", "Bearer " + token);
        return fetch(url, Object.assign({}, options, { headers: headers }));
      });
    }
    var meta = document.querySelector("meta[name=csrf-token]");
    if (meta) headers.set("X-CSRF-Token", meta.content);
    return fetch(url, Object.assign({ credentials: "same-origin" }, options, { headers: headers }));
  };

  // Template editor: a live preview as the merchant types.
  function templateEditor() {
    var form = document.getElementById("template-form");
    if (!form) return;
    var frame = document.getElementById("preview-frame");
    var sms = document.getElementById("preview-sms");
    var subject = document.getElementById("preview-subject");
    var problems = document.getElementById("preview-problems");
    var timer = null;
    function preview() {
      var body = new FormData(form);
      body.delete("id_token");
      careloopFetch(form.dataset.preview, { method: "POST", body: body })
        .then(function (response) { return response.json().then(function (data) { return [response, data]; }); })
        .then(function (pair) {
          var data = pair[1];
          problems.innerHTML = "";
          (data.problems || []).forEach(function (p) {
            var item = document.createElement("li");
            item.textContent = p;
            problems.appendChild(item);
          });
          if (!pair[0].ok) return;
          if (subject) subject.textContent = data.subject || "";
          if (frame) frame.srcdoc = data.html || "";
          if (sms) sms.textContent = data.text || "";
        })
        .catch(function () {});
    }
    form.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(preview, 400);
    });
    var button = document.getElementById("preview-button");
    if (button) button.addEventListener("click", preview);
    preview();
  }

  function ready() {
    bounce();
    templateEditor();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", ready);
  else ready();
})();
