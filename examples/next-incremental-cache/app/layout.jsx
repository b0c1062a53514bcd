export const metadata = { title: "tiercache: Next.js cache handlers" };

export default function RootLayout({ children }) {
  return (
    <html lang="en">
      <body>{children}</body>
    </html>
  );
}
