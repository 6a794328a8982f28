// A live snapshot of a camera: ask its station, then follow the command until the picture is in.
"use strict";
window.XL = window.XL || {};
(() => {
  const WAIT_MS = 30000; // a station that stays silent this long is offline or its camera is down
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  // Resolves to { url, at } of the picture; rejects with a message the page can show. `wanted()`
  // says whether the page still wants it (the user may have moved on).
  XL.liveSnapshot = async (station, camera, wanted = () => true) => {
    const path = `/api/stations/${encodeURIComponent(station)}/cameras/${encodeURIComponent(camera)}/snapshot-request`;
    const cmd = await XL.api(path, { method: "POST" });
    for (const end = Date.now() + WAIT_MS; Date.now() < end;) {
      await sleep(1000);
      if (!wanted()) return null;
      const s = await XL.api(cmd.status_url);
      if (s.media_url) return { url: s.media_url, at: s.replied_at || s.requested_at };
      if (s.state === "failed") throw new Error(`${XL.t("i.live_failed")}: ${s.error || ""}`);
    }
    throw new Error(XL.t("i.live_silent"));
  };
})();
