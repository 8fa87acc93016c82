import QRCode from 'qrcode';
import { useEffect, useState } from 'react';

/** A QR code of `text` as an SVG image (drawn in the browser; nothing is fetched). */
export function QrImage({
  text,
  alt,
  size = 168,
  dark = '#0f172a',
}: {
  text: string;
  alt: string;
  size?: number;
  dark?: string;
}) {
  const [src, setSrc] = useState<string | null>(null);
  useEffect(() => {
    let isCurrent = true;
    QRCode.toString(text, {
      type: 'svg',
      margin: 1,
      errorCorrectionLevel: 'M',
      color: { dark, light: '#ffffff' },
    })
      .then((svg) => {
        if (isCurrent) setSrc(`data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`);
      })
      .catch(() => setSrc(null));
    return () => {
      isCurrent = false;
    };
  }, [text, dark]);
  return src ? (
    <img src={src} alt={alt} width={size} height={size} data-testid="qr" />
  ) : (
    <div className="skeleton" style={{ width: size, height: size }} />
  );
}
