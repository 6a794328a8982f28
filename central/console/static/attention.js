// Getting an operator's attention: alerts that arrive while the feed is not on screen (another tab
// of the console, another window) are counted on the feed's tab and in the window's title, and,
// when the operator has turned the sound on, each one chimes: higher and twice for priority 1-2.
"use strict";
window.XL = window.XL || {};
(() => {
  const KEY = "xl.sound";
  let unseen = 0, audio = null;
  const baseTitle = document.title;
  const $ = (id) => document.getElementById(id);
  const looking = () => !document.hidden && !$("view-feed").hidden;

  function show() {
    const badge = $("feed-unseen");
    badge.hidden = unseen === 0;
    badge.textContent = unseen > 99 ? "99+" : String(unseen);
    document.title = unseen ? `(${unseen}) ${baseTitle}` : baseTitle;
  }
  function soundOn() { return localStorage.getItem(KEY) === "on"; }
  function showSound() {
    const b = $("sound");
    b.textContent = XL.t(soundOn() ? "snd.on" : "snd.off");
    b.setAttribute("aria-pressed", String(soundOn()));
  }
  // One tone (two for urgent alerts): a short sine with a soft start and end, no audio file to fetch.
  function chime(priority) {
    if (!audio) return;
    const urgent = priority && priority <= 2;
    for (let i = 0; i < (urgent ? 2 : 1); i += 1) {
      const at = audio.currentTime + i * 0.22, osc = audio.createOscillator(), gain = audio.createGain();
      osc.frequency.value = urgent ? 1320 : 880;
      gain.gain.setValueAtTime(0.0001, at);
      gain.gain.exponentialRampToValueAtTime(0.25, at + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.18);
      osc.connect(gain).connect(audio.destination);
      osc.start(at); osc.stop(at + 0.2);
    }
  }

  XL.attention = {
    // A new alert the operator's filters let through, just arrived on the live stream.
    arrived(a) {
      if (soundOn()) chime(a.priority);
      if (!looking()) { unseen += 1; show(); }
    },
    seen() { if (looking() && unseen) { unseen = 0; show(); } },
    reset() { unseen = 0; show(); },
  };
  document.addEventListener("visibilitychange", () => XL.attention.seen());
  document.addEventListener("xl:lang", showSound);
  $("sound").addEventListener("click", () => {
    localStorage.setItem(KEY, soundOn() ? "off" : "on");
    // Browsers let a page make sound only after a click on it: this click opens the audio context.
    if (soundOn() && !audio) audio = new AudioContext();
    if (audio && audio.state === "suspended") audio.resume();
    showSound();
    if (soundOn()) chime(3);
  });
  // Sound stays on across reloads, but the audio context waits for the first click anywhere.
  document.addEventListener("pointerdown", () => { if (soundOn() && !audio) audio = new AudioContext(); }, { once: true });
  showSound();
})();
