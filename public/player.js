// liveproc player glue: plays <video data-hls-src="…m3u8"> with hls.js (or natively where the
// browser plays HLS itself), and re-attaches whenever the page changes that attribute.
(function () {
  'use strict';
  var players = new WeakMap();

  function attach(video, waited) {
    var old = players.get(video);
    if (old) { old.destroy(); players.delete(video); }
    var src = video.getAttribute('data-hls-src');
    if (!src) { video.removeAttribute('src'); return; }
    // Pages add hls.min.js and this file as separate scripts that may load in either order:
    // wait for hls.js a little before falling back to the browser's own HLS.
    if (!window.Hls && (waited || 0) < 3000) {
      setTimeout(function () { attach(video, (waited || 0) + 50); }, 50);
      return;
    }
    if (window.Hls && window.Hls.isSupported()) {
      // Two segments behind the live edge keeps latency low with one-second segments.
      var hls = new window.Hls({ liveSyncDurationCount: 2, liveMaxLatencyDurationCount: 5, backBufferLength: 30 });
      hls.loadSource(src);
      hls.attachMedia(video);
      hls.on(window.Hls.Events.MANIFEST_PARSED, function () {
        qualityMenu(video, hls);
        video.play().catch(function () {});
      });
      hls.on(window.Hls.Events.ERROR, function (_, data) {
        // A codec this browser cannot play (H.265 in most browsers): say so, do not retry.
        if (data.details === 'manifestIncompatibleCodecsError') {
          notice(video, 'This browser cannot play this stream\'s video codec (H.265). ' +
            'The recording and replay keep it as it came; play them in a player that decodes H.265, ' +
            'or set the camera to H.264.');
          return;
        }
        if (data.fatal && video.getAttribute('data-hls-src') === src) {
          setTimeout(function () { if (players.get(video) === hls) attach(video); }, 2000);
        }
      });
      trackSession(video, hls);
      players.set(video, hls);
      window.liveprocPlayer = hls;
    } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
      video.src = src;
      video.play().catch(function () {});
      trackNativeSession(video, src);
    }
  }

  // A line under the player that says why it does not play.
  function notice(video, text) {
    var parent = video.parentElement;
    if (!parent) return;
    var p = parent.querySelector('[data-player-notice]');
    if (!p) {
      p = document.createElement('p');
      p.className = 'note error';
      p.setAttribute('role', 'alert');
      p.setAttribute('data-player-notice', '');
      parent.appendChild(p);
    }
    p.textContent = text;
  }

  // The quality menu of an ABR playlist (a stream group with renditions): "Auto" lets hls.js
  // choose by bandwidth; a level pins it. Filled into the page's [data-quality-menu] box.
  function qualityMenu(video, hls) {
    var box = video.parentElement && video.parentElement.querySelector('[data-quality-menu]');
    if (!box) return;
    box.textContent = '';
    if (!hls.levels || hls.levels.length < 2) { box.hidden = true; return; }
    var label = document.createElement('label');
    label.textContent = 'Quality ';
    var select = document.createElement('select');
    select.setAttribute('data-testid', 'quality');
    select.add(new Option('Auto', '-1'));
    hls.levels.forEach(function (l, i) {
      var name = l.name || (l.height + 'p');
      select.add(new Option(name + ' · ' + l.width + '×' + l.height, String(i)));
    });
    select.value = '-1';
    // currentLevel switches at once (the buffer is flushed), as a viewer picking expects.
    select.addEventListener('change', function () { hls.currentLevel = parseInt(select.value, 10); });
    label.appendChild(select);
    var now = document.createElement('span');
    now.className = 'muted';
    now.setAttribute('data-testid', 'quality-now');
    box.appendChild(label);
    box.appendChild(now);
    hls.on(window.Hls.Events.LEVEL_SWITCHED, function (_, d) {
      var l = hls.levels[d.level];
      if (!l) return;
      now.textContent = ' playing ' + (l.name || '') + ' ' + l.width + '×' + l.height;
      video.setAttribute('data-level', l.name || String(d.level));
    });
    box.hidden = false;
  }

  // Rewatch pages map the player's clock onto session time (seconds since the session started):
  // program dates follow media time, so offset = (fragment date - session start) - fragment start.
  function trackSession(video, hls) {
    var start = Date.parse(video.getAttribute('data-session-start') || '');
    if (isNaN(start)) return;
    function update(frag) {
      if (!frag || frag.programDateTime == null || !isFinite(frag.start)) return;
      var offset = (frag.programDateTime - start) / 1000 - frag.start;
      video.setAttribute('data-session-offset', offset.toFixed(3));
    }
    hls.on(window.Hls.Events.LEVEL_UPDATED, function (_, d) { update(d.details.fragments[0]); });
    hls.on(window.Hls.Events.FRAG_CHANGED, function (_, d) { update(d.frag); });
  }

  // The browser's own HLS starts its clock at the playlist's first segment: the offset is that
  // segment's date minus the session start.
  function trackNativeSession(video, src) {
    var start = Date.parse(video.getAttribute('data-session-start') || '');
    if (isNaN(start) || !window.fetch) return;
    fetch(src).then(function (r) { return r.text(); }).then(function (text) {
      var m = /#EXT-X-PROGRAM-DATE-TIME:(\S+)/.exec(text);
      var first = m && Date.parse(m[1]);
      if (first) video.setAttribute('data-session-offset', ((first - start) / 1000).toFixed(3));
    }).catch(function () {});
  }

  function scan() {
    document.querySelectorAll('video[data-hls-src]').forEach(function (v) {
      var src = v.getAttribute('data-hls-src');
      if (v.getAttribute('data-attached') !== src) {
        v.setAttribute('data-attached', src);
        attach(v);
      }
    });
  }

  // "Jump to live" on replay pages: to the live edge of the player on the page.
  document.addEventListener('click', function (e) {
    var button = e.target.closest && e.target.closest('[data-player-action="live"]');
    if (!button) return;
    var video = document.querySelector('video[data-hls-src]');
    var hls = video && players.get(video);
    if (hls && hls.liveSyncPosition) video.currentTime = hls.liveSyncPosition;
    else if (video && isFinite(video.duration)) video.currentTime = video.duration;
  });

  new MutationObserver(scan).observe(document.documentElement, {
    subtree: true, childList: true, attributes: true, attributeFilter: ['data-hls-src'],
  });
  scan();
})();
