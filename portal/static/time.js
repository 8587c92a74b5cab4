// Human dates in the reader's own time zone: every <time class="when" datetime="..."> the server rendered
// (in UTC) is relabelled "Today, 21:04", "Yesterday, 21:04", "3 Nov, 21:04" or "3 Nov 2025" by the
// same rules as portal/humane.py. Without JavaScript the server's UTC label stays.
(() => {
  "use strict";
  const pad = (n) => String(n).padStart(2, "0");
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const dayStart = (d) => new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();

  function human(when, now) {
    const clock = `${pad(when.getHours())}:${pad(when.getMinutes())}`;
    const days = Math.round((dayStart(now) - dayStart(when)) / 86400000);
    if (days === 0) return `Today, ${clock}`;
    if (days === 1) return `Yesterday, ${clock}`;
    const date = `${when.getDate()} ${MONTHS[when.getMonth()]}`;
    if (when.getFullYear() === now.getFullYear()) return `${date}, ${clock}`;
    return `${date} ${when.getFullYear()}`;
  }

  const now = new Date();
  for (const node of document.querySelectorAll("time.when[datetime]")) {
    const when = new Date(node.getAttribute("datetime"));
    if (!Number.isNaN(when.getTime())) node.textContent = human(when, now);
  }
})();
