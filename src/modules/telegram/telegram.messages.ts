import { z } from 'zod';

// Texts people read in Telegram, in Russian (the default) and English. Messages are plain text (no
// parse_mode), so merchant names, URLs and error texts need no escaping and cannot break a send.

/** The languages of bot texts. */
export type Locale = 'ru' | 'en';

/** Narrow no-break space (U+202F): the thin thousands separator of Russian amounts; it never wraps. */
export const THIN_SPACE = '\u202f';
const NBSP = '\u00a0';

/** Picks our locale from a Telegram language_code or a stored preference; Russian unless English. */
export function normalizeLocale(value: string | null | undefined): Locale {
  return value?.toLowerCase().startsWith('en') ? 'en' : 'ru';
}

function groupDigits(digits: string, separator: string): string {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, separator);
}

/** Money in minor units (kopecks) as roubles: "1 234,50 ₽" (ru, thin space) or "₽1,234.50" (en). */
export function formatMoney(minor: number, locale: Locale = 'ru'): string {
  // Integers only: amounts are kopecks, so the split into roubles and kopecks is exact.
  const sign = minor < 0 ? '-' : '';
  const abs = Math.abs(Math.trunc(minor));
  const roubles = String(Math.floor(abs / 100));
  const kopecks = String(abs % 100).padStart(2, '0');
  return locale === 'ru'
    ? `${sign}${groupDigits(roubles, THIN_SPACE)},${kopecks}${NBSP}₽`
    : `${sign}₽${groupDigits(roubles, ',')}.${kopecks}`;
}

const ruPlural = new Intl.PluralRules('ru');

/** A whole number with thousands separators: "1 500" (ru, thin space) or "1,500" (en). */
export function formatNumber(value: number, locale: Locale = 'ru'): string {
  const sign = value < 0 ? '-' : '';
  return `${sign}${groupDigits(String(Math.abs(Math.trunc(value))), locale === 'ru' ? THIN_SPACE : ',')}`;
}

/** A number of points with its noun: "1 балл", "3 балла", "1 500 баллов" / "1 point", "1,500 points". */
export function formatPoints(points: number, locale: Locale = 'ru'): string {
  const sign = points < 0 ? '-' : '';
  const abs = Math.abs(Math.trunc(points));
  if (locale === 'en') return `${sign}${groupDigits(String(abs), ',')} ${abs === 1 ? 'point' : 'points'}`;
  const form = ruPlural.select(abs);
  const noun = form === 'one' ? 'балл' : form === 'few' ? 'балла' : 'баллов';
  return `${sign}${groupDigits(String(abs), THIN_SPACE)}${NBSP}${noun}`;
}

function formatDate(iso: string, locale: Locale, timeZone: string): string {
  return new Intl.DateTimeFormat(locale === 'ru' ? 'ru-RU' : 'en-GB', {
    day: 'numeric',
    month: 'long',
    year: 'numeric',
    timeZone,
  }).format(new Date(iso));
}

// Payloads are parsed loosely: only what a text needs, extra fields are fine (events grow).
const Balance = z.looseObject({ available: z.number().int(), pending: z.number().int().default(0) });
const points = z.number().int();

const CustomerPayloads = {
  'purchase.committed': z.looseObject({
    orderId: z.string().optional(),
    total: z.number().int(),
    earnedPoints: points,
    redeemedPoints: points,
    pendingPoints: points.default(0),
    balance: Balance,
    // Added at fan-out from the purchase (purchases.earn_breakdown).
    earnBreakdown: z
      .array(z.looseObject({ source: z.string(), name: z.string(), points: z.number().int() }))
      .optional(),
  }),
  'purchase.refunded': z.looseObject({
    orderId: z.string().optional(),
    amount: z.number().int(),
    returnedPoints: points,
    revokedPoints: points,
    balance: Balance,
  }),
  'points.expired': z.looseObject({ points, balance: Balance }),
  'points.activated': z.looseObject({ points, balance: Balance }),
  'points.adjusted': z.looseObject({ points, balance: Balance }),
  'bonus.granted': z.looseObject({ points, campaignName: z.string(), pending: z.boolean().default(false) }),
  // Not written by the ledger yet: a reminder job sends it ahead of an expiry.
  'points.expiring': z.looseObject({
    points,
    expiresAt: z.string(),
    /** IANA zone for the date shown; Moscow unless the merchant's is known. */
    timeZone: z.string().default('Europe/Moscow'),
    balance: Balance.optional(),
  }),
};

/** Outbox event types that produce a customer message (others, e.g. customer.created, do not). */
export type CustomerNotificationType = keyof typeof CustomerPayloads;

/** The event types formatCustomerNotification has a text for. */
export const CUSTOMER_NOTIFICATION_TYPES = Object.keys(CustomerPayloads) as CustomerNotificationType[];

function isCustomerType(type: string): type is CustomerNotificationType {
  return Object.hasOwn(CustomerPayloads, type);
}

function balanceLine(balance: { available: number; pending: number }, locale: Locale): string {
  const pending =
    balance.pending > 0
      ? locale === 'ru'
        ? ` (ещё ${formatPoints(balance.pending, locale)} скоро станут доступны)`
        : ` (${formatPoints(balance.pending, locale)} more on the way)`
      : '';
  return locale === 'ru'
    ? `Баланс: ${formatPoints(balance.available, locale)}${pending}`
    : `Balance: ${formatPoints(balance.available, locale)}${pending}`;
}

/**
 * The customer's message for an outbox event, or null when the event tells them nothing (an
 * unknown type, a purchase without points). Throws when the payload of a known type is malformed,
 * so the outbox records the failure instead of silently skipping the message.
 */
export function formatCustomerNotification(
  type: string,
  payload: unknown,
  locale: Locale = 'ru',
): string | null {
  if (!isCustomerType(type)) return null;
  const ru = locale === 'ru';
  switch (type) {
    case 'purchase.committed': {
      const p = CustomerPayloads[type].parse(payload);
      if (p.earnedPoints === 0 && p.redeemedPoints === 0) return null;
      const lines = [
        ru ? `Покупка на ${formatMoney(p.total, locale)}` : `Purchase of ${formatMoney(p.total, locale)}`,
      ];
      if (p.redeemedPoints > 0) {
        lines.push(
          ru
            ? `Списано: ${formatPoints(p.redeemedPoints, locale)}`
            : `Spent: ${formatPoints(p.redeemedPoints, locale)}`,
        );
      }
      if (p.earnedPoints > 0) {
        const later = p.pendingPoints > 0 ? (ru ? ' (станут доступны позже)' : ' (available later)') : '';
        lines.push(
          ru
            ? `Начислено: ${formatPoints(p.earnedPoints, locale)}${later}`
            : `Earned: ${formatPoints(p.earnedPoints, locale)}${later}`,
        );
        // With campaign points, where the points came from.
        if (p.earnBreakdown?.some((line) => line.source === 'campaign')) {
          for (const line of p.earnBreakdown) {
            if (line.points === 0) continue;
            const name = line.source === 'base' ? (ru ? 'базовые' : 'base') : line.name;
            lines.push(`  · ${name}: +${formatPoints(line.points, locale)}`);
          }
        }
      }
      lines.push(balanceLine(p.balance, locale));
      return lines.join('\n');
    }
    case 'purchase.refunded': {
      const p = CustomerPayloads[type].parse(payload);
      const lines = [
        ru ? `Возврат на ${formatMoney(p.amount, locale)}` : `Refund of ${formatMoney(p.amount, locale)}`,
      ];
      if (p.returnedPoints > 0) {
        lines.push(
          ru
            ? `Возвращено: ${formatPoints(p.returnedPoints, locale)}`
            : `Returned to you: ${formatPoints(p.returnedPoints, locale)}`,
        );
      }
      if (p.revokedPoints > 0) {
        lines.push(
          ru
            ? `Отменено начисление: ${formatPoints(p.revokedPoints, locale)}`
            : `Earned points cancelled: ${formatPoints(p.revokedPoints, locale)}`,
        );
      }
      lines.push(balanceLine(p.balance, locale));
      return lines.join('\n');
    }
    case 'points.expired': {
      const p = CustomerPayloads[type].parse(payload);
      if (p.points <= 0) return null;
      return [
        ru
          ? `Сгорело: ${formatPoints(p.points, locale)} — срок их действия истёк.`
          : `${formatPoints(p.points, locale)} expired.`,
        balanceLine(p.balance, locale),
      ].join('\n');
    }
    case 'points.activated': {
      const p = CustomerPayloads[type].parse(payload);
      if (p.points <= 0) return null;
      return [
        ru
          ? `Стали доступны: ${formatPoints(p.points, locale)}. Их можно тратить.`
          : `Now available to spend: ${formatPoints(p.points, locale)}.`,
        balanceLine(p.balance, locale),
      ].join('\n');
    }
    case 'points.adjusted': {
      const p = CustomerPayloads[type].parse(payload);
      if (p.points === 0) return null;
      // The reason is the merchant's internal note: it is not shown to the customer.
      const amount = formatPoints(Math.abs(p.points), locale);
      const head =
        p.points > 0
          ? ru
            ? `Вам начислено: ${amount}.`
            : `You received ${amount}.`
          : ru
            ? `Списано: ${amount}.`
            : `${amount} deducted.`;
      return [head, balanceLine(p.balance, locale)].join('\n');
    }
    case 'bonus.granted': {
      const p = CustomerPayloads[type].parse(payload);
      if (p.points <= 0) return null;
      const amount = formatPoints(p.points, locale);
      const later = p.pending ? (ru ? ' Они скоро станут доступны.' : ' They will be available soon.') : '';
      return ru
        ? `Бонус по акции «${p.campaignName}»: ${amount}.${later}`
        : `Bonus from "${p.campaignName}": ${amount}.${later}`;
    }
    case 'points.expiring': {
      const p = CustomerPayloads[type].parse(payload);
      if (p.points <= 0) return null;
      const date = formatDate(p.expiresAt, locale, p.timeZone);
      const head = ru
        ? `${formatPoints(p.points, locale)} сгорят ${date} — успейте потратить!`
        : `${formatPoints(p.points, locale)} will expire on ${date}. Use them before then!`;
      return p.balance ? [head, balanceLine(p.balance, locale)].join('\n') : head;
    }
  }
}

/** Payloads of the notifications sent to merchant staff through the platform's notify bot. */
export const StaffNotificationData = {
  large_purchase: z.object({
    merchantName: z.string().optional(),
    orderId: z.string(),
    total: z.number().int(),
    earnedPoints: points.optional(),
    redeemedPoints: points.optional(),
    outletName: z.string().optional(),
  }),
  daily_summary: z.object({
    merchantName: z.string().optional(),
    /** The day summed up, YYYY-MM-DD in the merchant's zone. */
    date: z.string(),
    purchases: z.number().int(),
    /** Receipt totals in minor units. */
    revenue: z.number().int(),
    pointsEarned: points,
    pointsRedeemed: points,
  }),
  webhook_failing: z.object({
    merchantName: z.string().optional(),
    url: z.string(),
    lastError: z.string(),
    /** Failed attempts in a row, when known. */
    failures: z.number().int().optional(),
  }),
};

/** Kinds of staff notification. */
export type StaffNotificationKind = keyof typeof StaffNotificationData;

/** The data each kind of staff notification needs. */
export type StaffNotificationInput<K extends StaffNotificationKind> = z.input<
  (typeof StaffNotificationData)[K]
>;

function header(text: string, merchantName: string | undefined): string {
  return merchantName ? `${merchantName}: ${text}` : `${text.charAt(0).toUpperCase()}${text.slice(1)}`;
}

function formatDay(date: string, locale: Locale): string {
  // A calendar day, not an instant: format it at UTC noon so no zone shifts it to a neighbour.
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  return match ? formatDate(`${date}T12:00:00Z`, locale, 'UTC') : date;
}

/** The staff message of a kind (large purchase, daily summary, failing webhook endpoint). */
export function formatStaffNotification<K extends StaffNotificationKind>(
  kind: K,
  data: StaffNotificationInput<K>,
  locale: Locale = 'ru',
): string {
  const ru = locale === 'ru';
  // A widened key lets one switch narrow both the kind and its parsed data.
  const key: StaffNotificationKind = kind;
  switch (key) {
    case 'large_purchase': {
      const d = StaffNotificationData[key].parse(data);
      const lines = [
        header(
          ru
            ? `крупная покупка ${formatMoney(d.total, locale)}`
            : `large purchase ${formatMoney(d.total, locale)}`,
          d.merchantName,
        ),
        ru ? `Заказ: ${d.orderId}` : `Order: ${d.orderId}`,
      ];
      if (d.outletName) lines.push(ru ? `Точка: ${d.outletName}` : `Outlet: ${d.outletName}`);
      // Points are shown when the event carries them; an absent figure is not the same as zero.
      if (d.earnedPoints !== undefined || d.redeemedPoints !== undefined) {
        const earned = formatPoints(d.earnedPoints ?? 0, locale);
        const redeemed = formatPoints(d.redeemedPoints ?? 0, locale);
        lines.push(
          ru ? `Начислено: ${earned}, списано: ${redeemed}` : `Earned: ${earned}, redeemed: ${redeemed}`,
        );
      }
      return lines.join('\n');
    }
    case 'daily_summary': {
      const d = StaffNotificationData[key].parse(data);
      const day = formatDay(d.date, locale);
      return [
        header(ru ? `итоги за ${day}` : `summary for ${day}`, d.merchantName),
        ru ? `Покупок: ${d.purchases}` : `Purchases: ${d.purchases}`,
        ru ? `Выручка: ${formatMoney(d.revenue, locale)}` : `Revenue: ${formatMoney(d.revenue, locale)}`,
        ru
          ? `Начислено баллов: ${formatNumber(d.pointsEarned, locale)}`
          : `Points earned: ${formatNumber(d.pointsEarned, locale)}`,
        ru
          ? `Списано баллов: ${formatNumber(d.pointsRedeemed, locale)}`
          : `Points redeemed: ${formatNumber(d.pointsRedeemed, locale)}`,
      ].join('\n');
    }
    case 'webhook_failing': {
      const d = StaffNotificationData[key].parse(data);
      const failures =
        d.failures !== undefined
          ? ru
            ? ` (неудачных попыток подряд: ${d.failures})`
            : ` (${d.failures} failed attempts in a row)`
          : '';
      return [
        header(ru ? `вебхук не отвечает${failures}` : `webhook endpoint failing${failures}`, d.merchantName),
        `URL: ${d.url}`,
        ru ? `Последняя ошибка: ${d.lastError}` : `Last error: ${d.lastError}`,
        ru
          ? 'Проверьте адрес и работу сервера: доставка событий будет повторяться.'
          : 'Check the URL and the receiving server: delivery will be retried.',
      ].join('\n');
    }
  }
}

/** Replies of the notify bot to staff (linking a chat with /start <token>). */
export const BOT_REPLIES = {
  linked: (merchantName: string, locale: Locale) =>
    locale === 'ru'
      ? `Готово! Этот чат подключён к уведомлениям «${merchantName}»: крупные покупки, итоги дня и сбои вебхуков.`
      : `Done! This chat now receives notifications of "${merchantName}": large purchases, daily summaries and failing webhooks.`,
  alreadyLinked: (merchantName: string, locale: Locale) =>
    locale === 'ru'
      ? `Этот чат уже подключён к уведомлениям «${merchantName}».`
      : `This chat already receives notifications of "${merchantName}".`,
  expired: (locale: Locale) =>
    locale === 'ru'
      ? 'Срок действия ссылки истёк. Пожалуйста, получите новую ссылку в портале мерчанта.'
      : 'This link has expired. Please get a new one in the merchant portal.',
  invalid: (locale: Locale) =>
    locale === 'ru'
      ? 'Ссылка недействительна или уже использована. Пожалуйста, получите новую ссылку в портале мерчанта.'
      : 'This link is invalid or has already been used. Please get a new one in the merchant portal.',
  privateOnly: (locale: Locale) =>
    locale === 'ru'
      ? 'Подключить уведомления можно только в личном чате с ботом.'
      : 'Notifications can only be linked in a private chat with the bot.',
  help: (locale: Locale) =>
    locale === 'ru'
      ? 'Это бот уведомлений для сотрудников. Чтобы подключить чат, откройте ссылку подключения из портала мерчанта.'
      : 'This is the staff notification bot. To link this chat, open the link from the merchant portal.',
} as const;
