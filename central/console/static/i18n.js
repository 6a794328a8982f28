// zh-CN by default, English on request; the choice is kept in localStorage.
"use strict";
window.XL = window.XL || {};
(() => {
  const zh = {
    "lang.switch": "English", "app.title": "视频调度中心", "login.subtitle": "溧阳市雪亮工程 · 视频调度中心",
    "login.username": "用户名", "login.password": "密码", "login.submit": "登录", "login.failed": "登录失败",
    "nav.feed": "实时告警", "nav.orders": "工单", "nav.health": "站点状态", "nav.stats": "统计", "nav.logout": "退出",
    "conn.live": "实时", "conn.connecting": "重连中", "conn.offline": "离线",
    "snd.on": "提示音：开", "snd.off": "提示音：关", "err.db_down": "中心数据库暂时不可用，正在自动重试；告警保存在各站点，恢复后补传，不会丢失",
    "d.zone": "画区域", "d.line": "画警戒线", "d.mask": "画运动屏蔽区", "d.undo": "撤销", "d.clear": "清除", "d.copy": "复制", "d.copied": "已复制",
    "d.hint_zone": "在画面上依次点击区域的各个顶点（至少3个）", "d.hint_line": "点击两点：起点 p1，再点终点 p2",
    "d.paste": "坐标已按画面归一化（0–1）：粘贴到站点配置文件中此摄像机下（见 docs/edge.md），id 可改",
    "pw.open": "修改密码", "pw.current": "当前密码", "pw.new": "新密码（至少10位）", "pw.again": "再次输入新密码", "pw.submit": "保存",
    "pw.cancel": "取消", "pw.differ": "两次输入的新密码不一致", "pw.done": "密码已修改",
    "nav.users": "用户", "u.username": "用户名", "u.name": "姓名", "u.role": "角色", "u.worker": "网格员", "u.password": "初始密码（至少10位）",
    "u.create": "新建用户", "u.scope": "范围", "u.active": "状态", "u.on": "启用", "u.off": "已停用", "u.deactivate": "停用", "u.activate": "启用",
    "u.reset": "重置密码", "u.new_password": "新密码", "u.created": "已新建用户", "u.reset_done": "密码已重置",
    "role.admin": "管理员", "role.dispatcher": "调度员", "role.operator": "站点值班员", "role.worker": "网格员",
    "f.station": "站点", "f.camera": "摄像机", "f.rule": "规则", "f.state": "状态", "f.all": "全部", "f.since": "起始（北京时间）", "f.until": "截止",
    "feed.empty": "暂无告警", "feed.count": "告警", "feed.older": "加载更早的告警", "feed.export": "导出 CSV", "orders.empty": "暂无工单", "orders.more": "加载更多工单", "f.open": "未结",
    "o.priority": "优先级", "o.state": "状态", "o.station": "站点", "o.category": "类别", "o.department": "责任部门",
    "o.assignee": "处置人", "o.ack_due": "受理时限", "o.resolve_due": "办结时限", "o.level": "督办层级",
    "o.suggested": "建议派遣", "o.grid": "网格", "o.rating": "群众评价", "o.rating_code": "评价码", "o.rating_link": "评价链接（发给报事群众）",
    "i.back": "← 返回", "i.snapshot": "现场快照", "i.clip": "录像片段", "i.noclip": "暂无录像（站点上传后自动出现）", "i.clip_copying": "此浏览器无法播放该录像的编码（H.265），中心正在生成可播放的 H.264 副本，请稍后刷新。", "i.clip_unplayable": "此浏览器无法播放该录像。", "i.clip_download": "下载原始录像", "i.event_at": "事件起于", "i.event_seek": "跳到事件开始",
    "i.order": "工单", "i.history": "处置记录", "i.alerts": "关联告警", "i.note": "备注", "i.worker": "派遣给",
    "i.reason": "原因", "i.live": "请求实时快照", "i.live_ok": "已请求实时快照，等待站点回传…", "i.live_got": "实时快照", "i.live_failed": "站点未能拍摄", "i.live_silent": "站点30秒内未回传（可能离线），回传后可再次请求",
    "i.split": "拆分所选告警为新事件", "i.split_none": "请先勾选要拆分的告警", "i.merge": "并入本事件", "i.merged_into": "已并入事件", "i.merge_title": "可合并的事件（同网格同类别）", "i.breached": "已超时",
    "i.none": "—", "i.actions": "操作", "i.noactions": "当前无可执行操作",
    "h.online": "在线", "h.offline": "离线", "h.silent": "失联", "h.unknown": "无状态数据",
    "h.last": "最近告警", "h.live": "实时画面", "h.alerts24": "24小时告警", "h.open": "未结工单",
    "s.per_day_rule": "每日告警（按规则）", "s.per_station": "近14天告警（按站点）", "s.ack": "受理用时中位数（分钟）",
    "s.sla": "时限达标率", "s.ack_sla": "受理达标", "s.resolve_sla": "办结达标", "s.states": "工单状态", "s.nodata": "暂无数据",
    "reason.false_alarm": "误报", "reason.duplicate": "重复",
    "r.title": "群众评价", "r.case": "工单", "r.town": "镇", "r.closed": "结案时间", "r.ask": "请为本次处置打分（1-5 星）：",
    "r.note": "意见或建议（可选）", "r.submit": "提交评价", "r.unknown": "评价码无效，请核对回执单上的评价码。",
    "r.rated": "本工单已评价：", "r.not_closed": "工单尚未结案，结案后即可评价。", "r.thanks": "感谢您的评价！",
    "r.thanks_reopen": "感谢您的反馈，工单已重新派遣处理。", "r.s1": "很不满意", "r.s2": "不满意", "r.s3": "一般", "r.s4": "满意", "r.s5": "很满意",
  };
  const en = {
    "lang.switch": "中文", "app.title": "Visual Dispatch Centre", "login.subtitle": "Liyang Xueliang project · dispatch centre",
    "login.username": "Username", "login.password": "Password", "login.submit": "Log in", "login.failed": "Login failed",
    "nav.feed": "Live alerts", "nav.orders": "Orders", "nav.health": "Stations", "nav.stats": "Statistics", "nav.logout": "Log out",
    "conn.live": "Live", "conn.connecting": "Reconnecting", "conn.offline": "Offline",
    "snd.on": "Sound: on", "snd.off": "Sound: off", "err.db_down": "The centre's database is unavailable; retrying. Stations keep their alerts and send them once it is back: nothing is lost",
    "d.zone": "Draw zone", "d.line": "Draw tripwire", "d.mask": "Draw motion mask", "d.undo": "Undo", "d.clear": "Clear", "d.copy": "Copy", "d.copied": "Copied",
    "d.hint_zone": "Click the zone's corners on the picture, in order (3 or more)", "d.hint_line": "Click two points: p1, then p2",
    "d.paste": "Normalised to the picture (0-1): paste under this camera in the station's YAML (docs/edge.md); rename the id",
    "pw.open": "Change password", "pw.current": "Current password", "pw.new": "New password (10 or more characters)", "pw.again": "New password again", "pw.submit": "Save",
    "pw.cancel": "Cancel", "pw.differ": "The two new passwords differ", "pw.done": "Password changed",
    "nav.users": "Users", "u.username": "Username", "u.name": "Name", "u.role": "Role", "u.worker": "Grid worker", "u.password": "First password (10+ characters)",
    "u.create": "Add user", "u.scope": "Scope", "u.active": "Status", "u.on": "active", "u.off": "deactivated", "u.deactivate": "Deactivate", "u.activate": "Activate",
    "u.reset": "Reset password", "u.new_password": "New password", "u.created": "User added", "u.reset_done": "Password reset",
    "role.admin": "Admin", "role.dispatcher": "Dispatcher", "role.operator": "Station operator", "role.worker": "Grid worker",
    "f.station": "Station", "f.camera": "Camera", "f.rule": "Rule", "f.state": "State", "f.all": "All", "f.since": "From (Beijing time)", "f.until": "Until",
    "feed.empty": "No alerts yet", "feed.count": "Alerts", "feed.older": "Load older alerts", "feed.export": "Export CSV", "orders.empty": "No orders", "orders.more": "Load more orders", "f.open": "Open",
    "o.priority": "Priority", "o.state": "State", "o.station": "Station", "o.category": "Category", "o.department": "Department",
    "o.assignee": "Assignee", "o.ack_due": "Accept by", "o.resolve_due": "Resolve by", "o.level": "Escalation",
    "o.suggested": "Suggested", "o.grid": "Grid", "o.rating": "Public rating", "o.rating_code": "Rating code", "o.rating_link": "Rating link (for the member of the public)",
    "i.back": "← Back", "i.snapshot": "Snapshot", "i.clip": "Clip", "i.noclip": "No clip yet (appears once the station uploads it)", "i.clip_copying": "This browser cannot play this clip's codec (H.265); the centre is making a playable H.264 copy: reload in a moment.", "i.clip_unplayable": "This browser cannot play this clip.", "i.clip_download": "Download the original", "i.event_at": "event at", "i.event_seek": "Jump to the event's start",
    "i.order": "Work order", "i.history": "History", "i.alerts": "Alerts", "i.note": "Note", "i.worker": "Assign to",
    "i.reason": "Reason", "i.live": "Request live snapshot", "i.live_ok": "Live snapshot requested, waiting for the station…", "i.live_got": "Live snapshot", "i.live_failed": "The station could not take it", "i.live_silent": "No answer from the station within 30 s (offline?); ask again later",
    "i.split": "Split the ticked alerts into a new incident", "i.split_none": "Tick the alerts to split off first", "i.merge": "Merge into this incident", "i.merged_into": "Merged into incident", "i.merge_title": "Incidents that may be merged (same grid and category)", "i.breached": "overdue",
    "i.none": "—", "i.actions": "Actions", "i.noactions": "No action available now",
    "h.online": "online", "h.offline": "offline", "h.silent": "silent", "h.unknown": "no status data",
    "h.last": "Last alert", "h.live": "Live view", "h.alerts24": "Alerts 24 h", "h.open": "Open orders",
    "s.per_day_rule": "Alerts per day by rule", "s.per_station": "Alerts by station (14 days)", "s.ack": "Median time to accept (min)",
    "s.sla": "SLA kept", "s.ack_sla": "Accepted in time", "s.resolve_sla": "Resolved in time", "s.states": "Orders by state", "s.nodata": "No data",
    "reason.false_alarm": "False alarm", "reason.duplicate": "Duplicate",
    "r.title": "Rate how your case was handled", "r.case": "Case", "r.town": "Town", "r.closed": "Closed", "r.ask": "Please rate the handling (1-5 stars):",
    "r.note": "Comments (optional)", "r.submit": "Send rating", "r.unknown": "Unknown rating code: please check the code on your case slip.",
    "r.rated": "This case has been rated:", "r.not_closed": "The case is not closed yet; you can rate it once it is.", "r.thanks": "Thank you for your rating!",
    "r.thanks_reopen": "Thank you; the case has been reopened and sent back for handling.", "r.s1": "Very poor", "r.s2": "Poor", "r.s3": "Fair", "r.s4": "Good", "r.s5": "Very good",
  };
  const enums = {
    zh: {
      state: { new: "待受理", accepted: "已受理", verified: "已核实", rejected: "已驳回", dispatched: "已派遣", escalated: "已上报",
               in_progress: "处置中", resolved: "已反馈", closed: "已结案" },
      action: { create: "立案", accept: "受理", verify: "核实", reject: "驳回", inform: "告知派遣", escalate: "上报",
                act: "处置", feedback: "反馈", close: "结案", rate: "群众评价", sla_escalate: "超时督办" },
      kind: { intrusion: "区域入侵", line_crossing: "越线", loitering: "徘徊", crowd: "人员聚集", stationary_vehicle: "车辆滞留" },
      prio: { 1: "特急", 2: "紧急", 3: "一般", 4: "低" },
    },
    en: {
      state: { new: "New", accepted: "Accepted", verified: "Verified", rejected: "Rejected", dispatched: "Dispatched",
               escalated: "Escalated", in_progress: "In progress", resolved: "Resolved", closed: "Closed" },
      action: { create: "Opened", accept: "Accept", verify: "Verify", reject: "Reject", inform: "Inform & dispatch",
                escalate: "Escalate", act: "Handle", feedback: "Feedback", close: "Close", rate: "Rating", sla_escalate: "SLA escalation" },
      kind: { intrusion: "Intrusion", line_crossing: "Line crossing", loitering: "Loitering", crowd: "Crowd", stationary_vehicle: "Stationary vehicle" },
      prio: { 1: "P1 critical", 2: "P2 urgent", 3: "P3 normal", 4: "P4 low" },
    },
  };
  let lang = localStorage.getItem("xl.lang") === "en" ? "en" : "zh";
  XL.lang = () => lang;
  XL.t = (key) => (lang === "en" ? en : zh)[key] ?? key;
  XL.e = (group, value) => enums[lang][group]?.[value] ?? String(value);
  XL.applyI18n = (root = document) => {
    for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = XL.t(el.dataset.i18n);
    document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
  };
  XL.toggleLang = () => {
    lang = lang === "en" ? "zh" : "en";
    localStorage.setItem("xl.lang", lang);
    XL.applyI18n();
    document.dispatchEvent(new CustomEvent("xl:lang"));
  };
  XL.fmtTime = (iso) => {
    if (!iso) return "—";
    return new Intl.DateTimeFormat(lang === "en" ? "en-GB" : "zh-CN", {
      month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
      timeZone: "Asia/Shanghai",
    }).format(new Date(iso));
  };
})();
