// Starts the API explorer (app/http/swagger.py) without inline script, so the page works under
// the Content-Security-Policy the server sends.
window.addEventListener("DOMContentLoaded", function () {
  var container = document.getElementById("swagger-container");
  var csrfCookie = container.dataset.csrfCookie;
  var csrfHeader = container.dataset.csrfHeader;
  window.ui = SwaggerUIBundle({
    url: container.dataset.specUrl,
    dom_id: "#swagger-container",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    requestInterceptor: function (request) {
      if (csrfCookie && csrfHeader) {
        var match = document.cookie.split("; ").find(function (c) { return c.indexOf(csrfCookie + "=") === 0; });
        if (match) request.headers[csrfHeader] = match.slice(csrfCookie.length + 1);
      }
      return request;
    },
  });
});
