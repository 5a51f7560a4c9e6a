// Show a table's scroll hint (the element with class scroll-hint just before it) only while the
// table is wider than its box, so the hint never claims more than the reader sees.
function markOverflowingTables() {
  document.querySelectorAll(".scroll-hint").forEach((hint) => {
    let next = hint.nextElementSibling;
    const table = next && (next.matches("table") ? next : next.querySelector("table"));
    if (table) {
      hint.classList.toggle("overflows", table.scrollWidth > table.clientWidth + 1);
    }
  });
}
document.addEventListener("DOMContentLoaded", markOverflowingTables);
window.addEventListener("resize", markOverflowingTables);
