import { expirePosts } from "./actions.js";

export default function Page() {
  return (
    <form action={expirePosts}>
      <button type="submit">expire posts</button>
    </form>
  );
}
