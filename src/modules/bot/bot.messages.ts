import type { Offer } from '../campaigns/campaigns.offers.js';
import type { TierProgress } from '../customers/customers.service.js';
import { formatMoney, formatPoints, type Locale } from '../telegram/telegram.messages.js';

// Texts of a merchant's customer bot, Russian (the default) and English. Plain text, no parse_mode:
// merchant and customer names need no escaping and cannot break a send.

/** The zone history dates are shown in: the platform's first market; merchants have no zone yet. */
export const HISTORY_TIME_ZONE = 'Europe/Moscow';

/** Labels of the menu's reply-keyboard buttons; a press arrives as a message with this text. */
export const MENU_LABELS = {
  ru: {
    balance: 'Баланс',
    code: 'Мой код',
    history: 'История',
    offers: 'Акции',
    app: 'Открыть приложение',
    invite: 'Пригласить друга',
  },
  en: {
    balance: 'Balance',
    code: 'My code',
    history: 'History',
    offers: 'Offers',
    app: 'Open the app',
    invite: 'Invite a friend',
  },
} as const;

/** A menu action. */
export type MenuAction = keyof (typeof MENU_LABELS)['ru'];

/** The label of the contact button that shares the user's phone. */
export const SHARE_PHONE_LABEL = { ru: '📱 Поделиться номером', en: '📱 Share my phone number' } as const;

/** The menu action a text stands for, in either language; null for any other text. */
export function menuActionOf(text: string): MenuAction | null {
  const trimmed = text.trim().toLowerCase();
  for (const labels of [MENU_LABELS.ru, MENU_LABELS.en]) {
    for (const [action, label] of Object.entries(labels)) {
      if (label.toLowerCase() === trimmed) return action as MenuAction;
    }
  }
  return null;
}

function ruPlural(n: number, one: string, few: string, many: string): string {
  const form = new Intl.PluralRules('ru').select(n);
  return form === 'one' ? one : form === 'few' ? few : many;
}

/** A lifetime in words: "5 минут", "90 секунд" / "5 minutes", "90 seconds". */
export function formatDuration(seconds: number, locale: Locale): string {
  const isMinutes = seconds >= 60 && seconds % 60 === 0;
  const n = isMinutes ? seconds / 60 : seconds;
  if (locale === 'en') return `${n} ${isMinutes ? 'minute' : 'second'}${n === 1 ? '' : 's'}`;
  return isMinutes
    ? `${n} ${ruPlural(n, 'минуту', 'минуты', 'минут')}`
    : `${n} ${ruPlural(n, 'секунду', 'секунды', 'секунд')}`;
}

/** An earn rate in basis points as a percentage: 500 -> "5%", 750 -> "7,5%" (ru) / "7.5%" (en). */
export function formatRate(bp: number, locale: Locale): string {
  const text = (bp / 100).toFixed(2).replace(/\.?0+$/, '');
  return `${locale === 'ru' ? text.replace('.', ',') : text}%`;
}

/** What the balance message shows. */
export interface BalanceView {
  balance: { available: number; pending: number };
  tier: TierProgress | null;
  programme: { pointValueMinor: number; earnRateBp: number };
}

/** One ledger entry as the history shows it. */
export interface HistoryEntry {
  kind: string;
  bucket: string;
  points: number;
  orderId: string | null;
  reason: string | null;
  createdAt: Date;
}

const KIND_TEXT: Record<string, { ru: string; en: string }> = {
  earn: { ru: 'начислено за покупку', en: 'earned on a purchase' },
  redeem: { ru: 'оплачено баллами', en: 'spent on a purchase' },
  refund_return: { ru: 'возвращено при возврате покупки', en: 'returned with a refund' },
  refund_revoke: { ru: 'списано при возврате покупки', en: 'taken back with a refund' },
  expire: { ru: 'сгорели', en: 'expired' },
  activate: { ru: 'стали доступны', en: 'became available' },
  adjust: { ru: 'корректировка', en: 'adjustment' },
  bonus: { ru: 'бонус по акции', en: 'campaign bonus' },
};

function historyLine(entry: HistoryEntry, locale: Locale): string {
  const ru = locale === 'ru';
  const when = new Intl.DateTimeFormat(ru ? 'ru-RU' : 'en-GB', {
    day: 'numeric',
    month: 'short',
    hour: '2-digit',
    minute: '2-digit',
    timeZone: HISTORY_TIME_ZONE,
  }).format(entry.createdAt);
  const points = `${entry.points > 0 ? '+' : ''}${formatPoints(entry.points, locale)}`;
  const kind = KIND_TEXT[entry.kind]?.[locale] ?? entry.kind;
  const details = [
    entry.orderId ? (ru ? `заказ ${entry.orderId}` : `order ${entry.orderId}`) : null,
    entry.kind === 'earn' && entry.bucket === 'pending'
      ? ru
        ? 'станут доступны позже'
        : 'available later'
      : null,
    entry.kind === 'adjust' && entry.reason ? entry.reason : null,
  ].filter((d) => d !== null);
  return `${when} · ${points} · ${kind}${details.length > 0 ? ` (${details.join(', ')})` : ''}`;
}

/** Texts of the merchant's customer bot. */
export const BOT_TEXTS = {
  greeting: (merchantName: string, locale: Locale) =>
    locale === 'ru'
      ? `Здравствуйте! Это бонусная программа «${merchantName}»: копите баллы с покупок и оплачивайте ими следующие.`
      : `Hello! This is the loyalty programme of "${merchantName}": earn points on purchases and spend them on the next ones.`,
  askPhone: (locale: Locale) =>
    locale === 'ru'
      ? 'Чтобы присоединиться, поделитесь номером телефона — нажмите кнопку ниже. По этому номеру вас узнают и на кассе.'
      : 'To join, share your phone number with the button below. The till finds you by the same number.',
  notOwnContact: (locale: Locale) =>
    locale === 'ru'
      ? 'Это не ваш контакт. Пожалуйста, отправьте свой номер кнопкой «Поделиться номером».'
      : 'This is not your own contact. Please share your number with the "Share my phone number" button.',
  badPhone: (locale: Locale) =>
    locale === 'ru'
      ? 'Не получилось распознать номер телефона. Попробуйте ещё раз кнопкой ниже.'
      : 'We could not read that phone number. Please try again with the button below.',
  registered: (outcome: 'created' | 'linked', merchantName: string, locale: Locale) =>
    outcome === 'created'
      ? locale === 'ru'
        ? `Готово! Вы участник программы «${merchantName}». Баллы начисляются с каждой покупки — покажите кассиру код из меню.`
        : `Done! You have joined "${merchantName}". You earn points on every purchase: show the cashier the code from the menu.`
      : locale === 'ru'
        ? `Готово! Мы нашли ваш счёт в программе «${merchantName}» и подключили его к Telegram.`
        : `Done! We found your account with "${merchantName}" and linked it to Telegram.`,
  alreadyRegistered: (phone: string, locale: Locale) =>
    locale === 'ru'
      ? `Вы уже зарегистрированы с номером ${phone}.`
      : `You are already registered with the number ${phone}.`,
  menuHint: (locale: Locale) =>
    locale === 'ru' ? 'Выберите действие в меню ниже.' : 'Choose what you need in the menu below.',
  help: (locale: Locale) =>
    locale === 'ru'
      ? 'Я показываю ваш баланс, код для кассы, историю баллов и акции. Выберите действие в меню ниже.'
      : 'I show your balance, your code for the till, your points history and offers. Choose an action in the menu below.',
  balance: (view: BalanceView, locale: Locale) => {
    const ru = locale === 'ru';
    const lines = [
      ru
        ? `Баланс: ${formatPoints(view.balance.available, locale)}`
        : `Balance: ${formatPoints(view.balance.available, locale)}`,
    ];
    if (view.balance.pending > 0) {
      lines.push(
        ru
          ? `Скоро станут доступны: ${formatPoints(view.balance.pending, locale)}`
          : `On the way: ${formatPoints(view.balance.pending, locale)}`,
      );
    }
    const value = formatMoney(view.programme.pointValueMinor, locale);
    lines.push(ru ? `1 балл = ${value}` : `1 point = ${value}`);
    const tier = view.tier;
    const rate = formatRate(tier?.earnRateBp ?? view.programme.earnRateBp, locale);
    if (tier?.name) {
      lines.push(
        ru
          ? `Уровень: ${tier.name} — начисляем ${rate} от покупок`
          : `Tier: ${tier.name}, earning ${rate} of purchases`,
      );
    } else {
      lines.push(ru ? `Начисляем ${rate} от покупок` : `You earn ${rate} of purchases`);
    }
    if (tier?.next) {
      const remaining = formatMoney(tier.next.remaining, locale);
      lines.push(
        ru
          ? `До уровня «${tier.next.name}»: ещё ${remaining} покупок`
          : `To reach "${tier.next.name}": ${remaining} more in purchases`,
      );
    }
    return lines.join('\n');
  },
  code: (code: string, ttlSeconds: number, locale: Locale) =>
    locale === 'ru'
      ? `Ваш код: ${code}\nПокажите его кассиру. Код действует ${formatDuration(ttlSeconds, locale)} и подходит для одной покупки.`
      : `Your code: ${code}\nShow it to the cashier. It is valid for ${formatDuration(ttlSeconds, locale)} and for one purchase.`,
  codeCaption: (code: string, locale: Locale) =>
    locale === 'ru' ? `QR-код для кассы: ${code}` : `QR code for the till: ${code}`,
  history: (entries: HistoryEntry[], locale: Locale) =>
    entries.length === 0
      ? locale === 'ru'
        ? 'Операций с баллами пока нет.'
        : 'No points activity yet.'
      : [
          locale === 'ru' ? 'Последние операции:' : 'Latest activity:',
          ...entries.map((e) => historyLine(e, locale)),
        ].join('\n'),
  offers: (
    offers: Array<Pick<Offer, 'name' | 'description' | 'isLiveNow' | 'endsAt'>>,
    locale: Locale,
    timeZone: string,
  ) => {
    const ru = locale === 'ru';
    if (offers.length === 0) return ru ? 'Сейчас акций нет.' : 'No offers right now.';
    const until = (iso: string) =>
      new Intl.DateTimeFormat(ru ? 'ru-RU' : 'en-GB', {
        day: 'numeric',
        month: 'long',
        timeZone,
      }).format(new Date(iso));
    return [
      ru ? 'Акции:' : 'Offers:',
      ...offers.map((offer) => {
        const when = [
          offer.isLiveNow ? (ru ? 'действует сейчас' : 'on now') : ru ? 'скоро' : 'coming soon',
          offer.endsAt ? (ru ? `до ${until(offer.endsAt)}` : `until ${until(offer.endsAt)}`) : null,
        ].filter((part) => part !== null);
        return `• ${offer.name}: ${offer.description} (${when.join(', ')})`;
      }),
    ].join('\n');
  },
  openApp: (locale: Locale) =>
    locale === 'ru'
      ? 'Баланс, уровень, код с QR и история — в приложении:'
      : 'Balance, tier, code with QR and history are in the app:',
  invite: (view: { referralLink: string | null; referralCode: string }, locale: Locale) => {
    const ru = locale === 'ru';
    const lines = [
      ru
        ? 'Пригласите друга: отправьте ему ссылку ниже. Когда он присоединится и сделает первую покупку, баллы по акции «Приведи друга» получите вы оба (если она сейчас идёт).'
        : 'Invite a friend: send them the link below. Once they join and make their first purchase, you both get the points of the referral offer (when one is running).',
    ];
    if (view.referralLink) lines.push(view.referralLink);
    lines.push(ru ? `Ваш код приглашения: ${view.referralCode}` : `Your referral code: ${view.referralCode}`);
    lines.push(
      ru
        ? 'На кассе друг может назвать этот код при регистрации.'
        : 'At the till your friend can give this code when they sign up.',
    );
    return lines.join('\n');
  },
  appUnavailable: (locale: Locale) =>
    locale === 'ru'
      ? 'Приложение пока недоступно. Баланс, код и история — в меню ниже.'
      : 'The app is not available yet. Balance, code and history are in the menu below.',
} as const;
